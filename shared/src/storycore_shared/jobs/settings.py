"""Settings of a service that runs jobs (its API and its workers read the same class)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from storycore_shared.config import ServiceSettings


class JobSettings(ServiceSettings):
    # How long a worker may go silent before JetStream hands its job to another worker; a
    # working worker reports progress to JetStream three times per period.
    WORKER_ACK_WAIT_SECONDS: float = 30.0
    # Touched while the worker's fetch loop runs: container healthchecks and the dev stack read
    # it. Default: ``<tmp>/<service>-worker.alive``.
    WORKER_ALIVE_FILE: Path | None = None
    # On SIGTERM a worker finishes its job for this long, then hands it back to the queue.
    WORKER_DRAIN_SECONDS: float = 20.0
    # Infrastructure failures (database, NATS, a crash) are retried this often, then the job
    # fails with the last reason.
    JOB_MAX_ATTEMPTS: int = 5
    JOB_RETRY_BASE_SECONDS: float = 2.0
    # A processing job whose worker has not stamped its heartbeat for this long (a worker
    # stamps it four times a second) is shown as waiting for a worker.
    JOB_HEARTBEAT_STALE_SECONDS: float = 5.0
    MAX_STREAMS: int = 200
    STREAM_HEARTBEAT_SECONDS: float = 15.0
    TICKET_TTL_SECONDS: int = 60

    @property
    def alive_file(self) -> Path:
        return self.WORKER_ALIVE_FILE or Path(tempfile.gettempdir()) / (
            f"{self.SERVICE_NAME}-worker.alive"
        )
