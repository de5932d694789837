"""Jobs: long work run by scalable workers, with progress, cancel, SSE and crash recovery.

- :mod:`.tables`: ``JobTables.on(metadata, *extra_columns)``, the job, job_event and
  stream_ticket tables a service makes concrete;
- :mod:`.runner`: the worker side (:class:`JobSpec`, :class:`JobContext`, ``serve_worker``);
- :mod:`.service` and :mod:`.routes`: the API side (:class:`Jobs`, ``job_router``).
"""
