"""Conversations: who owns them, who is in them, their history, and their running reply.

The types here are the domain's; where they are kept is a store's concern
(:mod:`gateway.stores.conversations` is the seam). History messages carry a ``status``
(contract section 6): a user message is ``complete``; an assistant message is
``running`` while it streams, then ``complete`` (stop), ``incomplete`` (length, cut at
shutdown, or stopped after its viewers left), ``cancelled`` (cancel, interrupt, reset) or
``failed``; a reply a ``regenerate`` replaced is kept as ``replaced`` (contract section 14).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from .auth import random_token
from .protocol import iso

SessionType = Literal["person", "group"]
Status = Literal["complete", "incomplete", "cancelled", "failed", "running", "replaced"]


@dataclass(frozen=True, slots=True)
class Claim:
    """What :meth:`~gateway.stores.conversations.ConversationStore.claim_reply` decided,
    atomically.

    ``started``: the new reply is the conversation's running one; ``previous`` is the
    reply it replaced (an interrupt, or a stale one whose instance died: ``stale``).
    ``duplicate``: the client id was seen; ``previous`` is that message's reply.
    ``busy``: another reply runs and the message did not ask to interrupt it.
    """

    outcome: Literal["started", "duplicate", "busy"]
    previous: str | None = None
    stale: bool = False


def new_id(prefix: str) -> str:
    """``prefix-`` and 16 URL-safe characters: 96 random bits (ids made per socket and turn)."""
    return f"{prefix}-{random_token(16)}"


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image a user message carried, as history lists it: the id its bytes are kept
    under (``GET /api/v1/images/{id}``), its media type and size; or, for an image sent
    as an ``https://`` URL, that URL (nothing is kept)."""

    id: str
    media_type: str
    bytes: int
    url: str = ""

    def public(self) -> dict[str, object]:
        body: dict[str, object] = {
            "id": self.id,
            "media_type": self.media_type,
            "bytes": self.bytes,
        }
        if self.url:
            body["url"] = self.url
        return body


@dataclass(slots=True)
class HistoryMessage:
    """One message of a conversation's history, as stored and as ``public()`` shows it
    (contract section 6). A reply's message is written while it runs (``running``) and
    updated once when it ends; ``user`` and ``client_id`` are kept for user messages, and
    ``reasoning`` (a reasoning model's thinking, shown only when not empty) for replies."""

    id: str
    role: Literal["user", "assistant"]
    content: str
    status: Status
    created_at: float
    user: str = ""  # the author of a user message
    client_id: str = ""  # the client's own id of a user message
    reasoning: str = ""  # a reply's reasoning; never sent upstream again
    images: tuple[ImageRef, ...] = ()  # a user message's images

    def public(self) -> dict[str, object]:
        body: dict[str, object] = {
            "id": self.id,
            "role": self.role,
            "content": self.content,
            "status": self.status,
            "created_at": iso(self.created_at),
        }
        if self.reasoning:
            body["reasoning"] = self.reasoning
        if self.images:
            body["images"] = [image.public() for image in self.images]
        return body


@dataclass(slots=True)
class Conversation:
    """A conversation as a store hands it out: a snapshot a store's methods update.

    ``owner`` and a ``group``'s ``members`` may view it (:meth:`may_view`); ``running`` is
    the message id of its one running reply; ``replies_by_client_id`` maps the client ids
    seen to their replies (a repeated id replays, never runs twice).
    """

    id: str
    owner: str
    session_type: SessionType
    assistant: str
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    title: str = ""
    members: set[str] = field(default_factory=set)
    messages: list[HistoryMessage] = field(default_factory=list)
    running: str | None = None  # message id of the reply in progress
    replies_by_client_id: dict[str, str] = field(default_factory=dict)
    # How many messages the history holds where ``messages`` was not read (a list's rows).
    message_count: int | None = None

    def may_view(self, user: str, *, admin: bool = False) -> bool:
        if admin or user == self.owner:
            return True
        return self.session_type == "group" and user in self.members

    def summary(self) -> dict[str, object]:
        return {
            "id": self.id,
            "assistant": self.assistant,
            "session_type": self.session_type,
            "title": self.title,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "message_count": (
                len(self.messages) if self.message_count is None else self.message_count
            ),
        }
