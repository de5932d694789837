"""Test support: a pytest plugin with real Postgres and NATS (see :mod:`.plugin`)."""
