"""The ports the dev stack and the test servers listen on are picked outside the kernel's
ephemeral range, so an outgoing connection's source port cannot take one before its server
binds it."""

from __future__ import annotations

import socket

from storycore_testkit.infra import processes
from storycore_testkit.infra.processes import free_port


def test_ports_are_bindable_distinct_and_outside_the_ephemeral_range() -> None:
    ephemeral = processes._ephemeral()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert not [p for p in ports if p in ephemeral], ephemeral
    assert {5432, 4222, 8080}.isdisjoint(ports)
    for port in ports[:5]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_someone_listens_on_is_never_handed_out() -> None:
    listeners = []
    try:
        for port in processes.LISTEN_PORTS[:200]:  # occupy a slice of the range
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("127.0.0.1", port))
                sock.listen()
            except OSError:
                sock.close()
                continue
            listeners.append(sock)
        taken = {s.getsockname()[1] for s in listeners}
        assert taken.isdisjoint(free_port() for _ in range(300))
    finally:
        for sock in listeners:
            sock.close()
