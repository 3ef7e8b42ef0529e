"""The turn rules: what a turn does, decided from plain values, with no I/O.

:class:`~gateway.turns.Turns` and :class:`~gateway.reruns.Reruns` ask these functions and
apply the answers; everything that needs a store, a clock or a socket (the rate limit, the
atomic claim, the stores' writes) stays with them. So each rule here is tested with values alone
(``tests/test_turn_rules.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .config import AssistantConfig, LimitsConfig
from .conversations import HistoryMessage, ImageRef, Status
from .errors import BadRequest, Busy, GatewayError, MessageTooLong, NotAllowed
from .llm.events import ChatMessage, ChatRequest, Image
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


@dataclass(frozen=True, slots=True)
class Rerun:
    """A ``regenerate`` or ``edit`` may start a reply (if the store's claim agrees) to the
    user message at ``index`` of the history, whose text is now ``text``; ``replaces`` is
    the assistant message a regenerate marks ``replaced`` (None: the turn had no reply)."""

    index: int
    text: str
    replaces: str | None = None


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


def _may_rerun(
    history: Sequence[HistoryMessage], index: int, *, user: str, owner: str, admin: bool
) -> bool:
    """Who may redo a turn: the conversation's owner, an admin, or (in a group room) the
    member who sent that turn's message."""
    return admin or user == owner or history[index].user == user


def _busy(running: str | None, user_running: int, limits: LimitsConfig) -> Refuse | None:
    if running is not None:
        return Refuse(Busy())
    if user_running >= limits.max_replies_per_user:
        return Refuse(Busy("you have too many replies running; wait for one to finish"))
    return None


def decide_regenerate(
    *,
    history: Sequence[HistoryMessage],
    running: str | None,
    user_running: int,
    limits: LimitsConfig,
    user: str,
    owner: str,
    admin: bool = False,
) -> Rerun | Refuse:
    """What a ``regenerate`` does: a new reply to the last user message, replacing the
    reply after it (if any). Checked in this order: busy, the per-user cap, a user message
    to answer, who asks (:func:`_may_rerun`)."""
    refused = _busy(running, user_running, limits)
    if refused is not None:
        return refused
    index = next((i for i in reversed(range(len(history))) if history[i].role == "user"), None)
    if index is None:
        return Refuse(BadRequest("there is no message to regenerate a reply to"))
    if not _may_rerun(history, index, user=user, owner=owner, admin=admin):
        return Refuse(NotAllowed("only the owner or the message's sender may regenerate"))
    replaces = next(
        (
            m.id
            for m in reversed(history[index + 1 :])
            if m.role == "assistant" and m.status != "replaced"
        ),
        None,
    )
    return Rerun(index, history[index].content, replaces)


def decide_edit(
    *,
    history: Sequence[HistoryMessage],
    message_id: str,
    text: str,
    running: str | None,
    user_running: int,
    limits: LimitsConfig,
    user: str,
    owner: str,
    admin: bool = False,
) -> Rerun | Refuse:
    """What an ``edit`` does to the user message ``message_id`` (its history id, or the
    client id it was sent with): its text becomes ``text``, what followed it goes, and a
    reply starts. Checked in this order: the length, busy, the per-user cap, the message,
    who asks (:func:`_may_rerun`)."""
    if len(text) > limits.max_message_chars:
        return Refuse(
            MessageTooLong(
                f"the message has {len(text)} characters; the limit is {limits.max_message_chars}"
            )
        )
    refused = _busy(running, user_running, limits)
    if refused is not None:
        return refused
    index = next(
        (
            i
            for i in reversed(range(len(history)))
            if history[i].role == "user" and message_id in (history[i].id, history[i].client_id)
        ),
        None,
    )
    if index is None:
        return Refuse(BadRequest("no user message with that id in this conversation"))
    if not _may_rerun(history, index, user=user, owner=owner, admin=admin):
        return Refuse(NotAllowed("only the owner or the message's sender may edit it"))
    return Rerun(index, text)


def upstream_messages(
    history: Sequence[HistoryMessage],
    system_prompt: str,
    text: str,
    budget: int,
    images: tuple[Image, ...] = (),
    kept: Mapping[str, Image] | None = None,
) -> tuple[ChatMessage, ...]:
    """The system prompt, then as many past turns as fit ``budget`` characters (this turn's
    ``text`` counted first; empty, running and replaced messages skipped; each image counts
    :data:`IMAGE_CHARS`), then this turn with its ``images``. A past message's images are
    those of ``kept`` (id -> image) it names: the ones its store still has."""
    kept = kept or {}
    past = [
        ChatMessage(
            message.role,
            message.content,
            _past_images(message, kept) if message.images else (),
        )
        for message in _fitting(history, text, images, budget)
    ]
    head = (ChatMessage("system", system_prompt),) if system_prompt else ()
    return (*head, *past, ChatMessage("user", text, images))


def upstream_request(
    assistant: AssistantConfig,
    model: str,
    messages: tuple[ChatMessage, ...],
    *,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
) -> ChatRequest:
    """The request a turn sends ``model``: the ``messages``, the turn's sampling where it
    sets one (else the assistant's), the smaller of the two token caps, and the
    assistant's reasoning and endpoint settings."""
    return ChatRequest(
        model=model,
        messages=messages,
        temperature=assistant.temperature if temperature is None else temperature,
        top_p=assistant.top_p if top_p is None else top_p,
        max_tokens=min_tokens(max_tokens, assistant.max_tokens),
        thinking=assistant.thinking,
        thinking_budget=assistant.thinking_budget,
        endpoint=assistant.endpoint,
    )


def _past_images(message: HistoryMessage, kept: Mapping[str, Image]) -> tuple[Image, ...]:
    return tuple(_past_image(ref, kept) for ref in message.images if ref.url or ref.id in kept)


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
        if not (message.content or message.images) or message.status in ("running", "replaced"):
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
