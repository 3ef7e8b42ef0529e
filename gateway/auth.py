"""Identity: JWT verification and minting, anonymous ids, Origin checks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

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
    """Check signature (algorithms pinned by config), ``exp``, ``aud``, ``iss``; or raise."""
    key = config.jwt_public_key or (config.jwt_secret.reveal() if config.jwt_secret else "")
    if not key:
        raise Unauthorized("this gateway has no token key configured")
    options: dict[str, Any] = {"require": ["exp", "sub"]}
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=list(config.algorithms),
            audience=config.audience or None,
            issuer=config.issuer or None,
            options=options,
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {exc.__class__.__name__}") from None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("the token has no subject")
    return Identity(user=sub, admin=claims.get("role") == "admin", expires_at=float(claims["exp"]))
