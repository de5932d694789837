"""NATS URLs naming a cluster, and the replica setting the provisioning step reads."""

from __future__ import annotations

import pytest

from storycore_shared.config import _strip_credentials
from storycore_shared.events.broker import _credentials, nats_servers, nats_user
from storycore_shared.events.provision import replicas_setting

CLUSTER = "nats://shots:p%40ss@10.0.0.1:4222, nats://shots:p%40ss@10.0.0.2:4222,nats://10.0.0.3"


def test_a_cluster_url_lists_every_server_and_its_user() -> None:
    assert nats_servers(CLUSTER) == [
        "nats://shots:p%40ss@10.0.0.1:4222",
        "nats://shots:p%40ss@10.0.0.2:4222",
        "nats://10.0.0.3",
    ]
    assert nats_user(CLUSTER) == "shots"
    # Options, so the nodes the client discovers (without credentials) get them too.
    assert _credentials(CLUSTER) == {"user": "shots", "password": "p@ss"}
    assert _credentials("nats://10.0.0.3:4222") == {}
    with pytest.raises(ValueError, match="at least one server"):
        nats_servers(" , ")


def test_logged_urls_lose_every_password() -> None:
    assert _strip_credentials(CLUSTER) == (
        "nats://10.0.0.1:4222,nats://10.0.0.2:4222,nats://10.0.0.3"
    )


@pytest.mark.parametrize(("value", "replicas"), [(None, 1), ("", 1), ("3", 3), (" 5 ", 5)])
def test_the_replica_setting(value: str | None, replicas: int) -> None:
    env = {} if value is None else {"STORYCORE_NATS_REPLICAS": value}
    assert replicas_setting(env) == replicas


@pytest.mark.parametrize("value", ["0", "6", "three", "-1"])
def test_a_replica_count_outside_one_to_five_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="from 1 to 5"):
        replicas_setting({"STORYCORE_NATS_REPLICAS": value})
