"""Identity: JWT verification and minting, anonymous ids, Origin checks."""

from __future__ import annotations

import base64
import os
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt

from .config import AuthConfig
from .errors import Unauthorized


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    admin: bool = False
    anonymous: bool = False
    expires_at: float | None = None  # epoch seconds; None: never


def _signing_key(config: AuthConfig) -> str:
    if config.jwt_secret:
        return config.jwt_secret.reveal()
    raise ValueError("auth.jwt_secret: needed to sign tokens (set it in the config or env)")


def mint_token(config: AuthConfig, sub: str, *, admin: bool = False, ttl_s: int = 3600) -> str:
    """A token signed with ``auth.jwt_secret``, for ``python -m gateway token``."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + ttl_s}
    if admin:
        claims["role"] = "admin"
    if config.audience:
        claims["aud"] = config.audience
    if config.issuer:
        claims["iss"] = config.issuer
    alg = next((a for a in config.algorithms if a.startswith("HS")), "HS256")
    return jwt.encode(claims, _signing_key(config), algorithm=alg)


def verify_token(config: AuthConfig, token: str) -> Identity:
    """Check signature (algorithms pinned by config), ``exp``, ``aud``, ``iss``; or raise
    :class:`Unauthorized`, and nothing else, whatever the token.

    The key follows the token's algorithm: ``jwt_secret`` for HS*, ``jwt_public_key`` for
    the others (so a public key is never taken as an HMAC secret)."""
    try:
        alg = jwt.get_unverified_header(token).get("alg")
    except (jwt.PyJWTError, ValueError):  # ValueError: a lone surrogate cannot be encoded
        raise Unauthorized("invalid token: DecodeError") from None
    if not isinstance(alg, str) or alg not in config.algorithms:
        raise Unauthorized("invalid token: InvalidAlgorithmError")
    key = config.jwt_secret.reveal() if alg.startswith("HS") else config.jwt_public_key
    if not key:
        raise Unauthorized("this gateway has no token key configured")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=config.audience or None,
            issuer=config.issuer or None,
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired") from None
    except (jwt.PyJWTError, ValueError, TypeError) as exc:  # InvalidKeyError is no token error
        raise Unauthorized(f"invalid token: {exc.__class__.__name__}") from None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("the token has no subject")
    return Identity(user=sub, admin=claims.get("role") == "admin", expires_at=float(claims["exp"]))


# --------------------------------------------------------------------------- requests

ANON_COOKIE = "gw_anon"
SUBPROTOCOL = "gateway.v1"
_BEARER_PROTOCOL = "bearer."


def handshake_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The token offered with the handshake, best source first (contract section 4)."""
    header = headers.get("Authorization", "")
    if header[:7].lower() == "bearer " and header[7:].strip():
        return header[7:].strip()
    for proto in headers.get("Sec-WebSocket-Protocol", "").split(","):
        proto = proto.strip()
        if proto.startswith(_BEARER_PROTOCOL) and len(proto) > len(_BEARER_PROTOCOL):
            return proto[len(_BEARER_PROTOCOL) :]
    return query.get("token") or None


def new_anonymous_id() -> str:
    # 22 characters: 132 random bits, as many as token_urlsafe(16) gives (its last of 22
    # characters carries 2), and the same alphabet and length for anonymous_id() to accept.
    return "anon-" + random_token(22)


def random_token(chars: int) -> str:
    """``chars`` URL-safe base64 characters from the OS's CSPRNG, 6 random bits each: as
    unguessable as ``secrets.token_urlsafe`` of that length, for ids that act as secrets.

    A socket's handshake takes three ids; each ``token_urlsafe`` is a ``getrandom`` call and
    a base64 round of its own, so they are cut from one call's worth of urandom text instead.
    Each token is handed out once: ``popleft`` is atomic, so threads need no lock (two that
    refill at once each add fresh tokens). A forked child drops the pools: it must not
    repeat the parent's ids.
    """
    pool = _pools.get(chars)
    if pool is None:
        pool = _pools.setdefault(chars, deque())
    while True:
        try:
            return pool.popleft()
        except IndexError:
            text = base64.urlsafe_b64encode(os.urandom(_POOL_BYTES)).decode("ascii")
            pool.extend(text[i : i + chars] for i in range(0, len(text) - chars + 1, chars))


_POOL_BYTES = 3 * 1024  # a multiple of 3: 4 096 characters, no padding
_pools: dict[int, deque[str]] = {}  # by token length


os.register_at_fork(after_in_child=_pools.clear)


def anonymous_id(cookie: str | None) -> str | None:
    """The cookie's anonymous id if it is one we could have issued."""
    if (
        cookie
        and cookie.startswith("anon-")
        and 20 <= len(cookie) <= 64
        and cookie[5:].replace("-", "").replace("_", "").isalnum()
    ):
        return cookie
    return None


def origin_allowed(origin: str | None, host: str, allowed: tuple[str, ...]) -> bool:
    """Same-origin and non-browser clients always; other sites only when listed (or ``*``)."""
    if origin is None:
        return True
    if "*" in allowed or origin.rstrip("/") in allowed:
        return True
    netloc = urlsplit(origin).netloc
    return bool(netloc) and netloc.lower() == host.lower()


def request_identity(
    config: AuthConfig, headers: Mapping[str, str], cookies: Mapping[str, str]
) -> Identity:
    """Who is calling the REST API: the bearer token, else (auth not required) the cookie."""
    header = headers.get("Authorization", "")
    if header[:7].lower() == "bearer " and header[7:].strip():
        return verify_token(config, header[7:].strip())
    if not config.required:
        anon = anonymous_id(cookies.get(ANON_COOKIE))
        if anon is not None:
            return Identity(user=anon, anonymous=True)
    raise Unauthorized("send Authorization: Bearer <token>")
