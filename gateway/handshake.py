"""What a chat socket's upgrade request said, read once by the handler and decided on by the
session (:mod:`gateway.session`) and its sign-in (:mod:`gateway.sign_in`)."""

from __future__ import annotations

from dataclasses import dataclass

from .auth import Identity
from .conversations import SessionType


@dataclass(frozen=True, slots=True)
class Handshake:
    """What the upgrade request said: assistant, session type, conversation, origin, host,
    token, anonymous identity and delta pace; the session decides from it."""

    assistant: str
    session_type: SessionType
    conversation_id: str | None
    origin: str | None
    host: str
    token: str | None
    anonymous: Identity | None  # the cookie's (or a fresh) one; None: Redis was down
    instance: str
    auth_frame: bool = False  # ?auth=frame: the client sends its token in a first frame
    proxied: Identity | None = None  # the user a trusted proxy named (auth.trusted_user_header)
    address: str | None = None  # the client address (section 12): per-address limits
    frame_interval_ms: int = 0  # at most one delta frame per this many ms (0: no pace)
