"""What a started service does to Python's cyclic garbage collector (``tune_garbage_collector``,
called at the end of every service's start-up): start-up's objects frozen, and young cyclic
garbage collected every ``GC_YOUNG_THRESHOLD`` allocations instead of Python's 700. Run in a
process of its own, so the test process keeps its collector as it was."""

from __future__ import annotations

from storycore_testkit.subprocess_report import python_report

PROGRAM = """
import gc, json, weakref
from storycore_shared.app import GC_YOUNG_THRESHOLD, tune_garbage_collector

class Node:
    pass

def cycle():
    node = Node()
    node.me = node
    return weakref.ref(node)

default = gc.get_threshold()
tune_garbage_collector()
frozen = gc.get_freeze_count()
ref = cycle()
kept = [[] for _ in range(2 * default[0])]  # enough for a young collection at the default
after_default = ref() is not None
kept += [[] for _ in range(GC_YOUNG_THRESHOLD)]
print(json.dumps({
    "default": default[0],
    "threshold": gc.get_threshold()[0],
    "frozen": frozen,
    "alive_past_the_default": after_default,
    "alive_past_the_threshold": ref() is not None,
}))
"""


def test_young_cycles_wait_for_the_tuned_threshold_and_are_then_collected() -> None:
    report = python_report(PROGRAM)
    assert report["default"] == 700
    assert report["threshold"] == 10_000
    assert report["frozen"] > 10_000  # the imported kit: modules, models, tables
    assert report["alive_past_the_default"] is True
    assert report["alive_past_the_threshold"] is False
