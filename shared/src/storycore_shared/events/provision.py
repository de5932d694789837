"""The provisioning step: every stream and object-store bucket of the bus declaration.

Only the provisioning identity (user ``provisioner``) may create, change or delete streams and
buckets; services look them up and bind (:mod:`storycore_shared.events.bus`). The dev stack
runs this before it starts any service; compose runs it as the one-shot ``nats-provision``
container that every service waits for::

    STORYCORE_NATS_URL=nats://provisioner:<password>@nats:4222 \\
        python -m storycore_shared.events.provision

It is idempotent: run again (e.g. after an upgrade), it brings every stream's configuration to
the declared one. Durable consumers are not made here: each service creates its own, by name
(the bus module says why). ``SEQUENCES_KEYFRAME_BUCKET`` in the environment renames the
keyframe bucket, as it does for the service.

``STORYCORE_NATS_REPLICAS`` (1 by default) is how many copies of each stream and bucket a
JetStream cluster keeps: 3 on a three-node cluster, so losing one node loses nothing and stops
nothing (a stream needs a majority of its replicas up). It cannot exceed the cluster's size.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping

from storycore_shared.assets.nats_store import provision_bucket
from storycore_shared.events.broker import Broker, provision_stream
from storycore_shared.events.bus import BUS, PROVISIONER

# How long to wait for NATS (compose starts this right after the server reports healthy).
CONNECT_TIMEOUT_SECONDS = 30.0


REPLICAS_SETTING = "STORYCORE_NATS_REPLICAS"


def replicas_setting(env: Mapping[str, str]) -> int:
    """``STORYCORE_NATS_REPLICAS``: 1 (a single server) to 5 (JetStream's largest group)."""
    raw = env.get(REPLICAS_SETTING, "1").strip() or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= 5:
        raise ValueError(f"{REPLICAS_SETTING} must be a whole number from 1 to 5, not {raw!r}")
    return int(raw)


async def provision(nats_url: str, *, env: Mapping[str, str] | None = None) -> list[str]:
    """Create (or update) every declared stream and bucket; returns what it provisioned."""
    env = os.environ if env is None else env
    replicas = replicas_setting(env)
    broker = Broker(nats_url, name=PROVISIONER)
    await broker.start()
    try:
        js = await asyncio.wait_for(broker.jetstream(), CONNECT_TIMEOUT_SECONDS)
        done: list[str] = []
        for spec in BUS.streams:
            await provision_stream(js, spec, replicas=replicas)
            done.append(f"stream {spec.name} ({', '.join(spec.subjects)})")
        for bucket in BUS.buckets(env):
            await provision_bucket(js, bucket, replicas=replicas, update=True)
            done.append(f"bucket {bucket}")
        return [*done, f"{replicas} replica(s) of each"]
    finally:
        await broker.close()


def main() -> int:
    url = os.environ.get("STORYCORE_NATS_URL")
    if not url:
        sys.stderr.write("set STORYCORE_NATS_URL to the provisioner's URL\n")
        return 2
    try:
        done = asyncio.run(provision(url))
    except Exception as exc:
        sys.stderr.write(f"provisioning NATS failed: {exc!r}\n")
        return 1
    sys.stdout.writelines(f"provisioned {line}\n" for line in done)
    return 0


if __name__ == "__main__":
    sys.exit(main())
