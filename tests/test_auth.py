"""Auth through the gateway: accounts, tokens, rotation, and every token attack we know of."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from storycore_devstack.stack import Stack
from storycore_testkit.problems import assert_problem

ISSUER = "storycore-auth"
AUDIENCE = "storycore"


def test_register_login_me_and_jwks(api: httpx.Client, make_user: Any):
    user = make_user()
    me = api.get("/api/auth/me", headers=user.headers)
    assert me.status_code == 200
    assert me.json()["email"] == user.email
    assert set(me.json()) == {"id", "email", "name", "created_at"}
    assert me.json()["created_at"].endswith("Z") or "+00:00" in me.json()["created_at"]
    jwks = api.get("/api/auth/.well-known/jwks.json").json()
    assert jwks["keys"]
    for key in jwks["keys"]:
        assert key["alg"] in {"EdDSA", "ES256"}
        assert "d" not in key  # never the private part
    header = jwt.get_unverified_header(user.access_token)
    assert header["kid"] in {k["kid"] for k in jwks["keys"]}
    claims = jwt.decode(user.access_token, options={"verify_signature": False})
    assert {"sub", "iat", "exp", "iss", "aud", "jti"} <= set(claims)
    assert claims["sub"] == user.id


def test_duplicate_email_is_a_conflict(api: httpx.Client, make_user: Any):
    user = make_user()
    again = api.post(
        "/api/auth/register",
        json={"email": user.email.upper(), "password": "another password", "name": "X"},
    )
    assert_problem(again, 409, "email_taken")


@pytest.mark.parametrize(
    "body",
    [
        {"email": "short@example.com", "password": "short", "name": "X"},
        {"email": "not-an-email", "password": "long enough pw", "name": "X"},
        {"email": "extra@example.com", "password": "long enough pw", "name": "X", "admin": True},
        {"email": "noname@example.com", "password": "long enough pw"},
    ],
)
def test_bad_registrations_are_422(api: httpx.Client, body: dict[str, Any]):
    problem = assert_problem(api.post("/api/auth/register", json=body), 422, "validation_error")
    assert problem["errors"]
    assert "long enough pw" not in json.dumps(problem)  # input is never echoed


def test_wrong_password_and_unknown_email_answer_the_same(api: httpx.Client, make_user: Any):
    user = make_user()
    wrong = api.post("/api/auth/login", json={"email": user.email, "password": "wrong password"})
    unknown = api.post(
        "/api/auth/login",
        json={"email": f"nobody-{uuid.uuid4().hex}@example.com", "password": "wrong password"},
    )
    a, b = assert_problem(wrong, 401, "invalid_credentials"), assert_problem(unknown, 401)
    assert {k: v for k, v in a.items() if k != "request_id"} == {
        k: v for k, v in b.items() if k != "request_id"
    }


def test_refresh_rotates_and_reuse_revokes_the_family(api: httpx.Client, make_user: Any):
    user = make_user()
    first = api.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["refresh_token"] != user.refresh_token
    assert (
        api.get(
            "/api/auth/me", headers={"Authorization": f"Bearer {rotated['access_token']}"}
        ).status_code
        == 200
    )
    # The old token comes back: reuse. The answer is 401 and the whole family dies.
    assert_problem(
        api.post("/api/auth/refresh", json={"refresh_token": user.refresh_token}),
        401,
        "refresh_token_reused",
    )
    assert_problem(
        api.post("/api/auth/refresh", json={"refresh_token": rotated["refresh_token"]}),
        401,
        "refresh_token_reused",
    )
    # Another login is another family and still works.
    login = api.post("/api/auth/login", json={"email": user.email, "password": user.password})
    assert (
        api.post(
            "/api/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
        ).status_code
        == 200
    )


def test_refresh_token_is_taken_from_the_body_only(api: httpx.Client, make_user: Any):
    user = make_user()
    answer = api.post("/api/auth/refresh", params={"refresh_token": user.refresh_token})
    assert_problem(answer, 422)


def test_logout_kills_the_refresh_token(api: httpx.Client, make_user: Any):
    user = make_user()
    assert (
        api.post("/api/auth/logout", json={"refresh_token": user.refresh_token}).status_code == 204
    )
    assert_problem(api.post("/api/auth/refresh", json={"refresh_token": user.refresh_token}), 401)


# -- token attacks ----------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _claims(user_id: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": user_id,
        "iat": now,
        "exp": now + 600,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _real_key(stack: Stack) -> Any:
    return serialization.load_pem_private_key(stack.signing_key_file.read_bytes(), password=None)


def _kid(api: httpx.Client) -> str:
    return str(api.get("/api/auth/.well-known/jwks.json").json()["keys"][0]["kid"])


def attack_tokens(stack: Stack, api: httpx.Client, user_id: str) -> dict[str, str]:
    kid = _kid(api)
    real = _real_key(stack)
    foreign = ed25519.Ed25519PrivateKey.generate()
    public_pem = real.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    hs_body = _unsigned(hs_header, _claims(user_id))
    hs_sig = _b64(hmac.new(public_pem, hs_body.encode(), hashlib.sha256).digest())
    sign = {"algorithm": "EdDSA", "headers": {"kid": kid}}
    tokens = {
        "alg none": _unsigned({"alg": "none", "typ": "JWT", "kid": kid}, _claims(user_id)) + ".",
        "foreign key, real kid": jwt.encode(_claims(user_id), foreign, **sign),
        "foreign key, own kid": jwt.encode(
            _claims(user_id), foreign, algorithm="EdDSA", headers={"kid": "attacker"}
        ),
        "HS256 signed with the public key": f"{hs_body}.{hs_sig}",
        "expired": jwt.encode(
            _claims(user_id, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), real, **sign
        ),
        "wrong audience": jwt.encode(_claims(user_id, aud="someone-else"), real, **sign),
        "wrong issuer": jwt.encode(_claims(user_id, iss="https://evil.example"), real, **sign),
        "subject not a user id": jwt.encode(_claims("admin"), real, **sign),
        "garbage": "this-is-not-a-jwt",
        "tampered payload": _tamper(jwt.encode(_claims(user_id), real, **sign)),
    }
    for claim in ("exp", "iat", "sub", "aud", "iss"):
        tokens[f"missing {claim}"] = jwt.encode(_claims(user_id, **{claim: None}), real, **sign)
    return tokens


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = str(uuid.uuid4())
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def test_every_forged_or_incomplete_token_is_rejected(
    stack: Stack, api: httpx.Client, make_user: Any
):
    user = make_user()
    # Control: a token we sign ourselves with the real key and every claim is accepted, so the
    # rejections below are about what each token lacks, not about our signing.
    good = jwt.encode(
        _claims(user.id), _real_key(stack), algorithm="EdDSA", headers={"kid": _kid(api)}
    )
    assert api.get("/api/projects", headers={"Authorization": f"Bearer {good}"}).status_code == 200
    for name, token in attack_tokens(stack, api, user.id).items():
        for path in ("/api/projects", "/api/auth/me"):
            answer = api.get(path, headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 401, f"{name} on {path}: {answer.status_code}"
            assert_problem(answer, 401)


def test_missing_or_non_bearer_authorization_is_401(api: httpx.Client):
    assert_problem(api.get("/api/projects"), 401, "not_authenticated")
    assert_problem(api.get("/api/projects", headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401)


def test_login_throttling_stops_the_guesser_and_nobody_else(api: httpx.Client, make_user: Any):
    victim, bystander = make_user(), make_user()
    guesses = [
        api.post("/api/auth/login", json={"email": victim.email, "password": f"guess {i:04d}!"})
        for i in range(20)
    ]
    codes = [answer.status_code for answer in guesses]
    assert codes[:5] == [401] * 5  # the account's allowance
    assert codes.count(429) >= 10, codes
    refused = next(answer for answer in guesses if answer.status_code == 429)
    assert_problem(refused, 429, "login_throttled")
    assert int(refused.headers["Retry-After"]) >= 1

    # Meanwhile another account logs in as usual, and its answer is not cacheable.
    other = api.post(
        "/api/auth/login", json={"email": bystander.email, "password": bystander.password}
    )
    assert other.status_code == 200
    assert other.headers["cache-control"] == "no-store"

    # The right password waits out the block like any guess, then works.
    right = {"email": victim.email, "password": victim.password}
    blocked = api.post("/api/auth/login", json=right)
    if blocked.status_code == 429:
        time.sleep(int(blocked.headers["Retry-After"]) + 0.2)
    assert api.post("/api/auth/login", json=right).status_code == 200
