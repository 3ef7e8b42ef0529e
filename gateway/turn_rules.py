"""The turn rules: what a turn does, decided from plain values, with no I/O.

:class:`~gateway.turns.Turns` asks these functions and applies the answers; everything
that needs a store, a clock or a socket (the rate limit, the atomic claim, the stores'
writes) stays there. So each rule here is tested with values alone
(``tests/test_turn_rules.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .config import LimitsConfig
from .conversations import HistoryMessage, ImageRef, Status
from .errors import Busy, GatewayError, MessageTooLong
from .llm.events import ChatMessage, Image
from .replies import ReplyState


@dataclass(frozen=True, slots=True)
class Follow:
    """The message's client id was seen: the sender follows that reply from its start."""

    message_id: str


@dataclass(frozen=True, slots=True)
class Refuse:
    """The message starts nothing; the sender gets ``error``."""

    error: GatewayError


@dataclass(frozen=True, slots=True)
class Start:
    """The message may start a reply (if the store's atomic claim agrees); ``interrupting``
    is the running reply it would stop, as this instance last saw the conversation."""

    interrupting: str | None


TurnDecision = Follow | Refuse | Start


def decide_message(
    *,
    client_id: str,
    text: str,
    interrupt: bool,
    running: str | None,
    seen: Mapping[str, str],
    user_running: int,
    limits: LimitsConfig,
) -> TurnDecision:
    """What a ``message`` does to a conversation whose running reply is ``running`` and
    whose replies by client id are ``seen``, from a user with ``user_running`` replies
    running on this instance. Checked in this order: a seen id, the length, busy, the
    per-user cap (an interrupt passes the last two)."""
    existing = seen.get(client_id)
    if existing is not None:
        return Follow(existing)
    if len(text) > limits.max_message_chars:
        return Refuse(
            MessageTooLong(
                f"the message has {len(text)} characters; the limit is {limits.max_message_chars}"
            )
        )
    if running is not None and not interrupt:
        return Refuse(Busy())
    if user_running >= limits.max_replies_per_user and not interrupt:
        return Refuse(Busy("you have too many replies running; wait for one to finish"))
    return Start(running if interrupt else None)


def upstream_messages(
    history: Sequence[HistoryMessage],
    system_prompt: str,
    text: str,
    budget: int,
    images: tuple[Image, ...] = (),
    kept: Mapping[str, Image] | None = None,
) -> tuple[ChatMessage, ...]:
    """The system prompt, then as many past turns as fit ``budget`` characters (this turn's
    ``text`` counted first; empty and running messages skipped; each image counts
    :data:`IMAGE_CHARS`), then this turn with its ``images``. A past message's images are
    those of ``kept`` (id -> image) it names: the ones its store still has."""
    kept = kept or {}
    past = [
        ChatMessage(
            message.role,
            message.content,
            tuple(_past_image(ref, kept) for ref in message.images if ref.url or ref.id in kept),
        )
        for message in _fitting(history, text, images, budget)
    ]
    head = (ChatMessage("system", system_prompt),) if system_prompt else ()
    return (*head, *past, ChatMessage("user", text, images))


def past_image_ids(
    history: Sequence[HistoryMessage], text: str, images: tuple[Image, ...], budget: int
) -> list[str]:
    """The ids of the kept images of the past messages :func:`upstream_messages` sends."""
    return [
        ref.id
        for message in _fitting(history, text, images, budget)
        for ref in message.images
        if not ref.url
    ]


# What an image counts against the history budget, in characters.
IMAGE_CHARS = 1024


def _fitting(
    history: Sequence[HistoryMessage], text: str, images: tuple[Image, ...], budget: int
) -> list[HistoryMessage]:
    budget -= len(text) + IMAGE_CHARS * len(images)
    past: list[HistoryMessage] = []
    for message in reversed(history):
        if not (message.content or message.images) or message.status == "running":
            continue
        budget -= len(message.content) + IMAGE_CHARS * len(message.images)
        if budget < 0:
            break
        past.append(message)
    past.reverse()
    return past


def _past_image(ref: ImageRef, kept: Mapping[str, Image]) -> Image:
    return Image(url=ref.url) if ref.url else kept[ref.id]


def history_status(
    state: ReplyState, finish_reason: str | None, orphaned: bool, cut_at_shutdown: bool
) -> Status:
    """The status history keeps for a reply: a stop that no user asked for (no viewer came
    back, or the shutdown grace ran out) is ``incomplete``, not ``cancelled``."""
    match state:
        case ReplyState.COMPLETED:
            return "complete" if finish_reason == "stop" else "incomplete"
        case ReplyState.CANCELLED:
            return "incomplete" if orphaned or cut_at_shutdown else "cancelled"
        case ReplyState.FAILED:
            return "failed"
        case _:
            return "running"


def min_tokens(a: int | None, b: int | None) -> int | None:
    """The smaller of two optional token caps; None where neither caps."""
    if a is None or b is None:
        return a if b is None else b
    return min(a, b)
