"""Identity: JWT verification and minting, signed anonymous credentials, Origin checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt

from .client_address import Network, parse_address
from .config import AuthConfig
from .errors import Unauthorized


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling. ``user`` keys everything the caller owns (conversations, replies,
    limits); ``public`` is what others see of them (empty: ``user`` itself, a JWT's subject).
    An anonymous caller's ``user`` is private: it is never sent to anyone."""

    user: str
    admin: bool = False
    anonymous: bool = False
    expires_at: float | None = None  # epoch seconds; None: never
    public: str = ""

    @property
    def shown(self) -> str:
        """The id other people (room members, admins, logs) see."""
        return self.public or self.user


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


MAX_SUBJECT_CHARS = 256  # a token's ``sub`` names keys and goes into frames


def verify_token(config: AuthConfig, token: str) -> Identity:
    """Check signature (algorithms pinned by config), ``exp``, ``aud``, ``iss``; or raise
    :class:`Unauthorized`, and nothing else, whatever the token.

    The key follows the token's algorithm: ``jwt_secret`` for HS*, ``jwt_public_key`` for
    the others (so a public key is never taken as an HMAC secret)."""
    if not token.isascii():  # a JWT is base64url and dots; aiohttp hands undecodable
        raise Unauthorized("invalid token: not ASCII")  # header bytes on as surrogates
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
    if len(sub) > MAX_SUBJECT_CHARS or not sub.isprintable():
        # It names keys and goes into frames: no surrogate, control character or megabyte.
        raise Unauthorized("the token's subject is not a printable name of at most 256 characters")
    if sub.startswith("anon-"):  # anonymous ids' namespace: no token may name (or mimic) one
        raise Unauthorized("the token's subject starts with anon-, which is reserved")
    return Identity(user=sub, admin=claims.get("role") == "admin", expires_at=float(claims["exp"]))


def proxy_identity(
    config: AuthConfig, trusted: Sequence[Network], peer: str | None, headers: Mapping[str, str]
) -> Identity | None:
    """The user ``auth.trusted_user_header`` names, if the request's ``peer`` (the socket's
    own address, never a forwarded one) is one of ``server.trusted_proxies``; None when the
    header is not configured, absent, or comes from any other peer (then it is not read).
    A name a JWT's subject could not be is refused, as is one in the anonymous namespace."""
    name = config.trusted_user_header
    if not name or not peer:
        return None
    address = parse_address(peer)
    if address is None or not any(
        address.version == net.version and address in net for net in trusted
    ):
        return None
    user = headers.get(name, "").strip()
    if not user:
        return None
    if len(user) > MAX_SUBJECT_CHARS or not user.isprintable():
        raise Unauthorized(f"the {name} header is not a printable name of at most 256 characters")
    if user.startswith("anon-"):
        raise Unauthorized(f"the {name} header starts with anon-, which is reserved")
    return Identity(user=user)


# --------------------------------------------------------------------------- requests

ANON_COOKIE = "gw_anon"
SUBPROTOCOL = "gateway.v1"
_BEARER_PROTOCOL = "bearer."


def handshake_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The token offered with the handshake, best source first (contract section 4)."""
    token = bearer_token(headers)
    if token is not None:
        return token
    for proto in headers.get("Sec-WebSocket-Protocol", "").split(","):
        proto = proto.strip()
        if proto.startswith(_BEARER_PROTOCOL) and len(proto) > len(_BEARER_PROTOCOL):
            return proto[len(_BEARER_PROTOCOL) :]
    return query.get("token") or None


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


# A JWT starts "eyJ": the two never mix. (A prefix, not a password: S105.)
ANON_TOKEN_PREFIX = "gwa1."  # noqa: S105


class AnonymousIds:
    """Issues and checks the gateway-signed anonymous credential.

    A credential is ``gwa1.<id>.<mac>``: 22 random URL-safe characters and the first 32
    characters of the URL-safe HMAC-SHA256 of the id under the signing secret. Its holder's
    ``user`` is ``anon-<id>``: it owns their conversations and is never shown to anyone.
    Others see the public id, ``anon-`` and 16 characters of a second HMAC of the id: it
    names the holder in rooms and lists and cannot be turned back into a credential.
    :meth:`verify` refuses anything this gateway (or one sharing its secret) did not issue.
    The secret is loaded on first use (from Redis, which may be down at start-up).
    """

    def __init__(self, load_secret: Callable[[], Awaitable[bytes]]) -> None:
        self._load = load_secret
        self._secret: bytes | None = None

    async def _key(self) -> bytes:
        if self._secret is None:
            self._secret = await self._load()
        return self._secret

    async def issue(self) -> tuple[str, Identity]:
        """A fresh anonymous identity and its credential."""
        key = await self._key()
        rid = random_token(22)
        return _anon_token(key, rid), _anon_identity(key, rid)

    async def verify(self, token: str | None) -> Identity | None:
        """The identity a credential stands for; None if it is not one we issued."""
        if not token or not token.startswith(ANON_TOKEN_PREFIX):
            return None
        rid, _, mac = token[len(ANON_TOKEN_PREFIX) :].partition(".")
        if len(rid) != 22 or not mac:
            return None
        key = await self._key()
        if not hmac.compare_digest(_anon_token(key, rid), token):
            return None
        return _anon_identity(key, rid)

    async def token_for(self, identity: Identity) -> str:
        """The credential of an anonymous identity this gateway issued."""
        assert identity.anonymous and identity.user.startswith("anon-")
        return _anon_token(await self._key(), identity.user[5:])


def _mac(key: bytes, purpose: bytes, rid: str) -> str:
    digest = hmac.new(key, purpose + b"\0" + rid.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")


def _anon_token(key: bytes, rid: str) -> str:
    return f"{ANON_TOKEN_PREFIX}{rid}.{_mac(key, b'credential', rid)[:32]}"


def _anon_identity(key: bytes, rid: str) -> Identity:
    return Identity(
        user="anon-" + rid, anonymous=True, public="anon-" + _mac(key, b"public", rid)[:16]
    )


def memory_secret(config: AuthConfig) -> Callable[[], Awaitable[bytes]]:
    """``auth.anonymous_secret``, else one made now (one instance: no one to share it with)."""
    secret = config.anonymous_secret.reveal().encode() or os.urandom(32)

    async def load() -> bytes:
        return secret

    return load


async def identify(config: AuthConfig, anonymous: AnonymousIds, token: str) -> Identity:
    """The identity a token stands for: a signed anonymous credential or a JWT; or raise."""
    if not token.startswith(ANON_TOKEN_PREFIX):
        return verify_token(config, token)
    if config.required:
        raise Unauthorized("this gateway does not accept anonymous users")
    identity = await anonymous.verify(token)
    if identity is None:
        raise Unauthorized("invalid anonymous token")
    return identity


def origin_allowed(origin: str | None, host: str, allowed: tuple[str, ...]) -> bool:
    """Same-origin and non-browser clients always; other sites only when listed (or ``*``)."""
    if origin is None:
        return True
    if "*" in allowed or origin.rstrip("/") in allowed:
        return True
    netloc = urlsplit(origin).netloc
    return bool(netloc) and netloc.lower() == host.lower()


def bearer_token(headers: Mapping[str, str]) -> str | None:
    header = headers.get("Authorization", "")
    if header[:7].lower() == "bearer " and header[7:].strip():
        return header[7:].strip()
    return None


async def request_identity(
    config: AuthConfig,
    anonymous: AnonymousIds,
    headers: Mapping[str, str],
    cookies: Mapping[str, str],
    proxied: Identity | None = None,
) -> Identity:
    """Who is calling the REST API: the bearer token (a JWT or, auth not required, an
    anonymous credential), else the user a trusted proxy named (``proxied``, from
    :func:`proxy_identity`), else (auth not required) the anonymous credential's cookie."""
    token = bearer_token(headers)
    if token is not None:
        return await identify(config, anonymous, token)
    if proxied is not None:
        return proxied
    if not config.required:
        identity = await anonymous.verify(cookies.get(ANON_COOKIE))
        if identity is not None:
            return identity
    raise Unauthorized("send Authorization: Bearer <token>")
