"""Audio render benchmark: prints figures, asserts nothing.

1. Voice: characters synthesised per second (espeak-ng through the service's engine, resampled
   to 48 kHz), for a short line and for a long paragraph.
2. Music: render time / audio duration for the six stems summed (what ``generate`` does) and
   CPU seconds, at 48 kHz, with peak RSS of a child process that only renders.

    .venv/bin/python benchmarks/audio_render_bench.py            (60 s of music)
    .venv/bin/python benchmarks/audio_render_bench.py --quick    (10 s)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from audio import profiles
from audio.dsp import music, voice

LINE = "The lighthouse keeper climbed the stairs slowly, counting every step until dawn."
PARAGRAPH = " ".join([LINE] * 12)


def bench_voice() -> None:
    params = voice.VoiceParams(language="en-US")
    voice.render_voice("Warm up.", params)  # the engine's first start (a probe) is not timed
    for name, text in (("line", LINE), ("paragraph", PARAGRAPH)):
        runs = []
        for _ in range(3):
            began = time.perf_counter()
            samples = voice.render_voice(text, params)
            runs.append(time.perf_counter() - began)
        best = min(runs)
        seconds = samples.shape[0] / 48000
        print(
            f"voice {name:9s} {len(text):5d} chars  {len(text) / best:8.0f} chars/s  "
            f"render {best * 1000:7.1f} ms for {seconds:5.1f} s of speech "
            f"({best / seconds:.3f} x real time)"
        )


def child_music(seconds: float) -> None:
    spec = profiles.music_spec(genre="action", intensity="high", action=None, rhythm=None)
    began, cpu = time.perf_counter(), time.process_time()
    frames = 0
    for block in music.music_blocks(spec, duration_seconds=seconds, seed=1, sample_rate=48000):
        frames += music.mix_stems(block).shape[0]
    wall, used = time.perf_counter() - began, time.process_time() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "cpu": used, "frames": frames, "rss_mb": rss}))


def bench_music(seconds: float) -> None:
    run = subprocess.run(
        [sys.executable, __file__, "--child-music", str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    duration = figures["frames"] / 48000
    print(
        f"music {duration:.0f} s, 6 stems summed: {figures['wall']:.2f} s wall "
        f"({figures['wall'] / duration:.3f} x real time), {figures['cpu']:.2f} s CPU, "
        f"peak RSS {figures['rss_mb']:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s of music")
    parser.add_argument("--child-music", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_music:
        child_music(args.child_music)
        return
    bench_voice()
    bench_music(10.0 if args.quick else 60.0)


if __name__ == "__main__":
    main()
