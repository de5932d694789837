"""nats-server configuration made from the bus declaration, for the dev stack and for compose.

The dev stack writes the ``authorization`` block with the passwords it generated
(:func:`authorization_block`); ``deploy/nats/nats.conf`` is :func:`compose_config`, whose
passwords are ``$NATS_<USER>_PASSWORD`` references that nats-server fills from its
environment (docker-compose.yml passes each as ``${VAR:?}``). Regenerate it after changing
the declaration::

    python3 storycore.py nats-config > deploy/nats/nats.conf

:func:`parse_conf` reads the subset of the nats-server format these files use, so a test can
check that the file and the declaration agree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from storycore_shared.events.bus import BUS, Identity

COMPOSE_HEADER = """\
# NATS for docker compose: JetStream on a file store that fsyncs every write (ARCHITECTURE §6).
# The bus is not open: every service has its own user with least-privilege permissions, and
# only "provisioner" may manage streams and buckets. Generated from
# storycore_shared.events.bus by `python3 storycore.py nats-config`; tests/test_compose.py
# checks that this file and the declaration agree. Passwords come from the environment
# ($NATS_<USER>_PASSWORD, each required by docker-compose.yml). Monitoring: this container only.
"""


def password_variable(user: str) -> str:
    """The environment variable holding ``user``'s password in compose."""
    return f"NATS_{user.upper().replace('-', '_')}_PASSWORD"


def _quoted(items: list[str], indent: str) -> str:
    inner = "".join(f"{indent}  {json.dumps(item)}\n" for item in items)
    return f"[\n{inner}{indent}]"


def _user_block(identity: Identity, password: str, env: Mapping[str, str] | None) -> str:
    permissions = identity.permissions(env)
    pad = "        "
    return (
        "    {\n"
        f"      user: {json.dumps(identity.user)}\n"
        f"      password: {password}\n"
        "      permissions: {\n"
        f"        publish: {{ allow: {_quoted(permissions['publish'], pad)} }}\n"
        f"        subscribe: {{ allow: {_quoted(permissions['subscribe'], pad)} }}\n"
        "      }\n"
        "    }\n"
    )


def authorization_block(
    passwords: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None
) -> str:
    """``authorization { users = [...] }`` for every declared identity.

    With ``passwords`` (user → password) they are written literally; without, as the
    ``$NATS_<USER>_PASSWORD`` variables compose passes in.
    """
    users = []
    for identity in BUS:
        if passwords is None:
            password = f"${password_variable(identity.user)}"
        else:
            password = json.dumps(passwords[identity.user])
        users.append(_user_block(identity, password, env))
    return "authorization {\n  users = [\n" + "".join(users) + "  ]\n}\n"


def compose_config() -> str:
    """The whole of ``deploy/nats/nats.conf``."""
    return (
        COMPOSE_HEADER
        + 'listen: "0.0.0.0:4222"\n'
        + 'http: "127.0.0.1:8222"\n'
        + "jetstream {\n"
        + '  store_dir: "/data"\n'
        + "  sync_interval: always\n"
        + "}\n"
        + authorization_block()
    )


# -- reading the format back -----------------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    """A ``$NAME`` reference, filled by nats-server from the config or the environment."""

    name: str


_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*|//[^\n]*)
  | (?P<punct>[{}\[\],:=])
  | "(?P<dq>(?:[^"\\]|\\.)*)"
  | '(?P<sq>[^']*)'
  | (?P<word>[^\s{}\[\],:="'\#]+)
    """,
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"cannot read the config at {text[position : position + 20]!r}")
        position = match.end()
        kind = match.lastgroup
        if kind == "space":
            continue
        if kind == "dq":
            tokens.append(("string", json.loads(f'"{match.group("dq")}"')))
        elif kind == "sq":
            tokens.append(("string", match.group("sq")))
        elif kind == "punct":
            tokens.append((match.group(), match.group()))
        else:
            tokens.append(("word", match.group()))
    return tokens


class _Reader:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at][0] if self.at < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def mapping(self, closing: str | None) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while True:
            while self.peek() == ",":
                self.take()
            if self.peek() == closing:
                if closing is not None:
                    self.take()
                return result
            kind, key = self.take()
            if kind not in ("word", "string"):
                raise ValueError(f"expected a key, found {key!r}")
            if self.peek() in (":", "="):
                self.take()
            result[key] = self.value()

    def value(self) -> Any:
        kind, text = self.take()
        if kind == "{":
            return self.mapping("}")
        if kind == "[":
            items: list[Any] = []
            while True:
                while self.peek() == ",":
                    self.take()
                if self.peek() == "]":
                    self.take()
                    return items
                items.append(self.value())
        if kind == "string":
            return text
        if kind != "word":
            raise ValueError(f"unexpected {text!r}")
        if text.startswith("$"):
            return Variable(text[1:])
        if text in ("true", "false"):
            return text == "true"
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        return text


def parse_conf(text: str) -> dict[str, Any]:
    """The nats-server config as nested dicts and lists (``$VAR`` as :class:`Variable`)."""
    return _Reader(text).mapping(None)
