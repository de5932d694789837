"""Video editor upload benchmark: prints figures, asserts nothing.

A 500 MB media upload (a WAV whose body is produced on the fly, multipart, through Traefik's
unbuffered upload route) into a running video editor: MB/s end to end (received, probed,
thumbnailed and stored in the NATS object store), and the API process's peak RSS and growth
while it streamed. Runs its own stack on loopback (embedded Postgres and NATS, free ports):

    .venv/bin/python benchmarks/video_upload_bench.py [--megabytes 500]
"""

from __future__ import annotations

import argparse
import shutil
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

from storycore_devstack.stack import Stack, StackConfig
from storycore_testkit.infra.processes import free_port


def wav_header(data_bytes: int, rate: int = 48000) -> bytes:
    return (
        b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 2, rate, rate * 4, 4, 16)
        + b"data" + struct.pack("<I", data_bytes)
    )  # fmt: skip


def body(boundary: str, data_bytes: int) -> Iterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="b.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode() + wav_header(data_bytes)
    chunk = bytes(1024 * 1024)
    left = data_bytes
    while left > 0:
        yield chunk[: min(left, len(chunk))]
        left -= min(left, len(chunk))
    yield f"\r\n--{boundary}--\r\n".encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=500)
    args = parser.parse_args()
    size = args.megabytes * 2**20
    data_dir = Path(tempfile.mkdtemp(prefix="storycore-bench-"))
    stack = Stack(
        StackConfig(
            data_dir=data_dir / "stack",
            gateway_port=free_port(),
            gateway_host="127.0.0.1",
            durable=False,
            environment="test",
            extra_env={"STORYCORE_LOG_LEVEL": "WARNING"},
        )
    )
    try:
        stack.start()
        with httpx.Client(base_url=stack.gateway_url, timeout=600) as client:
            email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
            client.post(
                "/api/auth/register",
                json={"email": email, "password": "benchmark pw 1", "name": "Bench"},
            )
            token = client.post(
                "/api/auth/login", json={"email": email, "password": "benchmark pw 1"}
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            pid = client.post("/api/projects", headers=headers, json={"name": "b"}).json()["id"]
            tid = client.post(
                "/api/video-editor/projects", headers=headers, json={"project_id": pid, "name": "b"}
            ).json()["id"]
            replica = stack.replicas["video-editor"][0]
            assert replica.process is not None
            process = psutil.Process(replica.process.pid)
            before = process.memory_info().rss
            peak = [before]
            sampling = threading.Event()
            sampling.set()

            def sample() -> None:
                while sampling.is_set():
                    peak[0] = max(peak[0], process.memory_info().rss)
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample)
            sampler.start()
            boundary = uuid.uuid4().hex
            began = time.perf_counter()
            answer = client.post(
                f"/api/video-editor/projects/{tid}/media",
                headers={
                    **headers,
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                },
                content=body(boundary, size),
            )
            elapsed = time.perf_counter() - began
            sampling.clear()
            sampler.join()
            print(f"upload of {args.megabytes} MB answered {answer.status_code} in {elapsed:.1f} s")
            print(f"  {args.megabytes / elapsed:.0f} MB/s end to end (received, probed, stored)")
            print(
                f"  API process RSS: {before / 2**20:.0f} MB before, peak {peak[0] / 2**20:.0f} MB "
                f"(+{(peak[0] - before) / 2**20:.0f} MB while streaming)"
            )
    finally:
        stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
