"""verify_token with keys of both families: any token ends in Identity or Unauthorized."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway import config
from gateway.auth import verify_token
from gateway.errors import Unauthorized

SECRET = "s" * 64
_PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC = (
    _PRIVATE.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
CLAIMS = {"sub": "alice", "exp": int(time.time()) + 600}


def hs256_signed_with(key: str) -> str:
    """An HS256 token keyed with any bytes (PyJWT refuses to sign with a PEM key)."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    body = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(json.dumps(CLAIMS).encode())
    signature = hmac.new(key.encode(), body, hashlib.sha256).digest()
    return (body + b"." + b64(signature)).decode()


def both_families() -> config.AuthConfig:
    return config.loads(
        f"[auth]\nalgorithms = ['RS256', 'HS256']\njwt_secret = '{SECRET}'\n"
        f"jwt_public_key = '''{PUBLIC}'''\n"
    ).auth


def test_each_algorithm_is_checked_with_its_own_key() -> None:
    """HS256 tokens verify with the secret and RS256 tokens with the public key, side by side."""
    auth = both_families()
    assert verify_token(auth, jwt.encode(CLAIMS, SECRET, algorithm="HS256")).user == "alice"
    assert verify_token(auth, jwt.encode(CLAIMS, _PRIVATE, algorithm="RS256")).user == "alice"


@pytest.mark.parametrize(
    "token",
    [
        hs256_signed_with(PUBLIC),  # the public key used as an HMAC secret
        jwt.encode(CLAIMS, "x" * 64, algorithm="HS256"),
        jwt.encode(CLAIMS, "x" * 64, algorithm="HS512"),  # not listed
        "not-a-token",
        "a.b.c",
        "",
        "eyJhbGciOiJIUzI1NiJ9.e30.\udc80",
        "eyJhbGciOlsiSFMyNTYiXX0.e30.x",  # alg is a list
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.",  # alg none
    ],
)
def test_any_bad_token_is_unauthorized_and_nothing_else(token: str) -> None:
    """Forged, foreign, malformed and confused tokens raise Unauthorized, never another error."""
    with pytest.raises(Unauthorized):
        verify_token(both_families(), token)


def test_a_public_key_only_gateway_refuses_hs256_tokens() -> None:
    """With RS256 alone configured, an HS256 token is Unauthorized, not a key error."""
    auth = config.loads(f"[auth]\nalgorithms = ['RS256']\njwt_public_key = '''{PUBLIC}'''\n").auth
    with pytest.raises(Unauthorized):
        verify_token(auth, hs256_signed_with(PUBLIC))


@pytest.mark.parametrize("sub", ["\ud800", "bob\x00", "x" * 257, "a\nb"])
def test_a_validly_signed_token_with_an_unusable_subject_is_refused(sub: str) -> None:
    """A signed token whose sub holds a lone surrogate, a control character or 257 characters
    is Unauthorized: the subject names Redis keys and goes into every viewer's frames."""
    token = jwt.encode({**CLAIMS, "sub": sub}, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        verify_token(both_families(), token)
