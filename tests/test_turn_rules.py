"""The turn rules on plain values: no sockets, no stores, no event loop."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import AssistantConfig, LimitsConfig
from gateway.conversations import HistoryMessage, ImageRef
from gateway.errors import BadRequest, Busy, MessageTooLong, NotAllowed
from gateway.llm.events import ChatMessage, Image
from gateway.replies import ReplyState
from gateway.turn_rules import (
    Follow,
    Refuse,
    Rerun,
    Start,
    decide_edit,
    decide_message,
    decide_regenerate,
    history_status,
    min_tokens,
    past_image_ids,
    upstream_messages,
    upstream_request,
)

LIMITS = LimitsConfig(max_message_chars=10, max_replies_per_user=2)


def decide(**changes: Any) -> object:
    values: dict[str, Any] = {
        "client_id": "c-1",
        "text": "hi",
        "interrupt": False,
        "running": None,
        "seen": {},
        "user_running": 0,
        "limits": LIMITS,
    }
    values.update(changes)
    return decide_message(**values)


def said(role: str, content: str, status: str = "complete") -> HistoryMessage:
    return HistoryMessage(f"id-{content}", role, content, status, 0.0)  # type: ignore[arg-type]


def test_an_idle_conversation_starts_a_reply() -> None:
    """A short message in a conversation with nothing running starts a reply, interrupting none."""
    assert decide() == Start(None)


def test_a_seen_client_id_follows_its_reply() -> None:
    """A client id the conversation has seen follows that reply, before any other check."""
    decision = decide(seen={"c-1": "m-7"}, text="x" * 50, running="m-9", user_running=9)
    assert decision == Follow("m-7")


def test_a_message_over_the_limit_is_refused_as_too_long() -> None:
    """A text longer than max_message_chars is refused, naming its length and the limit."""
    decision = decide(text="x" * 11, interrupt=True)
    assert isinstance(decision, Refuse) and isinstance(decision.error, MessageTooLong)
    assert "11 characters" in decision.error.message and "limit is 10" in decision.error.message


def test_a_message_at_the_limit_starts() -> None:
    """A text of exactly max_message_chars is accepted."""
    assert decide(text="x" * 10) == Start(None)


def test_a_busy_conversation_refuses_a_plain_message() -> None:
    """While a reply runs, a message without interrupt is refused as busy."""
    decision = decide(running="m-1")
    assert isinstance(decision, Refuse) and type(decision.error) is Busy
    assert decision.error.message == Busy.default_message


def test_an_interrupt_starts_and_names_the_running_reply() -> None:
    """An interrupt passes busy and says which running reply it stops."""
    assert decide(running="m-1", interrupt=True) == Start("m-1")


def test_a_user_at_the_reply_cap_is_refused() -> None:
    """A user with max_replies_per_user replies running is refused, saying why."""
    decision = decide(user_running=2)
    assert isinstance(decision, Refuse) and isinstance(decision.error, Busy)
    assert "too many replies" in decision.error.message


def test_an_interrupt_passes_the_per_user_cap() -> None:
    """An interrupt replaces a reply, so the per-user cap does not refuse it."""
    assert decide(user_running=2, interrupt=True) == Start(None)


def test_upstream_messages_put_the_system_prompt_history_and_turn_in_order() -> None:
    """The system prompt, then past turns oldest first, then this turn."""
    history = [said("user", "a"), said("assistant", "b")]
    assert upstream_messages(history, "be brief", "c", 100) == (
        ChatMessage("system", "be brief"),
        ChatMessage("user", "a"),
        ChatMessage("assistant", "b"),
        ChatMessage("user", "c"),
    )


def test_upstream_messages_keep_only_the_newest_turns_that_fit() -> None:
    """The budget counts this turn first, then the newest past turns; older ones are dropped."""
    history = [said("user", "aaaa"), said("assistant", "bbbb"), said("user", "cccc")]
    messages = upstream_messages(history, "", "dd", 10)
    assert messages == (
        ChatMessage("assistant", "bbbb"),
        ChatMessage("user", "cccc"),
        ChatMessage("user", "dd"),
    )


def test_upstream_messages_skip_empty_and_running_messages() -> None:
    """A running reply and an empty message are not sent upstream; no prompt, no system turn."""
    history = [said("user", "a"), said("assistant", ""), said("assistant", "part", "running")]
    assert upstream_messages(history, "", "b", 100) == (
        ChatMessage("user", "a"),
        ChatMessage("user", "b"),
    )


def test_upstream_messages_never_carry_a_replys_reasoning() -> None:
    """A past reply goes upstream as its content only; its reasoning stays in history, and
    a reply that only reasoned (no content) is skipped."""
    thought = said("assistant", "b")
    thought.reasoning = "let me think"
    only_thought = said("assistant", "")
    only_thought.reasoning = "hmm"
    history = [said("user", "a"), thought, said("user", "x"), only_thought]
    messages = upstream_messages(history, "", "c", 100)
    assert messages == (
        ChatMessage("user", "a"),
        ChatMessage("assistant", "b"),
        ChatMessage("user", "x"),
        ChatMessage("user", "c"),
    )


@pytest.mark.parametrize(
    ("state", "reason", "orphaned", "cut", "status"),
    [
        (ReplyState.COMPLETED, "stop", False, False, "complete"),
        (ReplyState.COMPLETED, "length", False, False, "incomplete"),
        (ReplyState.CANCELLED, "cancelled", False, False, "cancelled"),
        (ReplyState.CANCELLED, "interrupted", False, False, "cancelled"),
        (ReplyState.CANCELLED, "cancelled", True, False, "incomplete"),
        (ReplyState.CANCELLED, "cancelled", False, True, "incomplete"),
        (ReplyState.FAILED, "error", False, False, "failed"),
        (ReplyState.RUNNING, None, False, False, "running"),
    ],
)
def test_history_status_of_each_way_a_reply_ends(
    state: ReplyState, reason: str | None, orphaned: bool, cut: bool, status: str
) -> None:
    """History keeps a stop nobody asked for (orphaned, cut at shutdown) as incomplete."""
    assert history_status(state, reason, orphaned, cut) == status


@pytest.mark.parametrize(
    ("a", "b", "smaller"), [(None, None, None), (5, None, 5), (None, 7, 7), (9, 3, 3)]
)
def test_min_tokens_is_the_smaller_cap(a: int | None, b: int | None, smaller: int | None) -> None:
    """The smaller of two optional caps; None only where neither caps."""
    assert min_tokens(a, b) == smaller


def test_upstream_request_takes_the_turns_sampling_else_the_assistants() -> None:
    """A turn's own sampling wins, the smaller token cap applies, the rest is the assistant's."""
    assistant = AssistantConfig(
        temperature=0.2, top_p=0.9, max_tokens=100, thinking="on", thinking_budget=50
    )
    messages = (ChatMessage("user", "hi"),)
    plain = upstream_request(assistant, "qwen-plus", messages)
    assert (plain.model, plain.messages) == ("qwen-plus", messages)
    assert (plain.temperature, plain.top_p, plain.max_tokens) == (0.2, 0.9, 100)
    assert (plain.thinking, plain.thinking_budget, plain.endpoint) == ("on", 50, None)
    own = upstream_request(
        assistant, "qwen-plus", messages, temperature=0.0, top_p=0.5, max_tokens=500
    )
    assert (own.temperature, own.top_p, own.max_tokens) == (0.0, 0.5, 100)
    assert upstream_request(assistant, "m", messages, max_tokens=10).max_tokens == 10


def turn(
    role: str, content: str, status: str = "complete", user: str = "", client_id: str = ""
) -> HistoryMessage:
    return HistoryMessage(
        f"id-{content}",
        role,  # type: ignore[arg-type]
        content,
        status,  # type: ignore[arg-type]
        0.0,
        user=user,
        client_id=client_id,
    )


TALK = [
    turn("user", "q1", user="alice", client_id="c-1"),
    turn("assistant", "a1"),
    turn("user", "q2", user="bob", client_id="c-2"),
    turn("assistant", "a2-old", "replaced"),
    turn("assistant", "a2"),
]


def regenerate(**changes: Any) -> object:
    values: dict[str, Any] = {
        "history": TALK,
        "running": None,
        "user_running": 0,
        "limits": LIMITS,
        "user": "alice",
        "owner": "alice",
    }
    values.update(changes)
    return decide_regenerate(**values)


def edit(**changes: Any) -> object:
    values: dict[str, Any] = {
        "history": TALK,
        "message_id": "c-1",
        "text": "new",
        "running": None,
        "user_running": 0,
        "limits": LIMITS,
        "user": "alice",
        "owner": "alice",
    }
    values.update(changes)
    return decide_edit(**values)


def refused_with(decision: object) -> type:
    assert isinstance(decision, Refuse)
    return type(decision.error)


def test_regenerate_answers_the_last_user_turn_and_replaces_its_live_reply() -> None:
    """The last user message is asked again; the last reply not yet replaced is replaced."""
    assert regenerate() == Rerun(2, "q2", "id-a2")


def test_regenerate_of_an_unanswered_turn_replaces_nothing() -> None:
    """A last user message with no reply after it gets one; nothing is marked replaced."""
    assert regenerate(history=TALK[:3]) == Rerun(2, "q2", None)


def test_regenerate_follows_busy_and_the_per_user_cap() -> None:
    """A running reply or a user at the cap: busy, as for a message (no interrupt here)."""
    assert refused_with(regenerate(running="m-1")) is Busy
    assert refused_with(regenerate(user_running=2)) is Busy


def test_regenerate_with_no_user_message_is_a_bad_request() -> None:
    """An empty history has nothing to regenerate."""
    assert refused_with(regenerate(history=[])) is BadRequest


def test_in_a_group_a_turn_is_redone_by_its_sender_or_the_owner_only() -> None:
    """bob sent q2: bob and alice (the owner) may regenerate it, carol may not; an admin may."""
    assert isinstance(regenerate(user="bob"), Rerun)
    assert refused_with(regenerate(user="carol")) is NotAllowed
    assert isinstance(regenerate(user="carol", admin=True), Rerun)
    assert refused_with(edit(user="bob")) is NotAllowed  # q1 is alice's


def test_edit_finds_the_message_by_client_or_history_id() -> None:
    """edit names a user message by the client id it was sent with or its history id."""
    assert edit() == Rerun(0, "new")
    assert edit(message_id="id-q2", user="bob") == Rerun(2, "new")


def test_edit_refuses_unknown_ids_assistant_ids_long_text_and_busy() -> None:
    """No such user message, an assistant's id, too long, or busy: refused."""
    assert refused_with(edit(message_id="c-9")) is BadRequest
    assert refused_with(edit(message_id="id-a1")) is BadRequest
    assert refused_with(edit(text="x" * 11)) is MessageTooLong
    assert refused_with(edit(running="m-1")) is Busy


def test_upstream_messages_skip_replaced_replies() -> None:
    """A replaced reply never goes upstream again."""
    sent = upstream_messages(TALK, "", "q3", 1000)
    assert "a2-old" not in [m.content for m in sent]


def test_upstream_messages_carry_this_turns_and_the_kept_past_images() -> None:
    """This turn's images go with it; a past message's images are the kept ones it names
    (one no longer kept is left out; a URL image goes as its URL)."""
    png = Image("image/png", b"\x89PNG")
    refs = (ImageRef("i-1", "image/png", 4), ImageRef("i-gone", "image/png", 4))
    url = ImageRef("i-2", "", 0, url="https://x.test/a.png")
    history = [
        HistoryMessage("u-1", "user", "look", "complete", 0.0, images=refs),
        HistoryMessage("u-2", "user", "", "complete", 0.0, images=(url,)),
    ]
    assert past_image_ids(history, "and?", (png,), 5000) == ["i-1", "i-gone"]
    assert upstream_messages(history, "", "and?", 5000, (png,), {"i-1": png}) == (
        ChatMessage("user", "look", (png,)),
        ChatMessage("user", "", (Image(url="https://x.test/a.png"),)),
        ChatMessage("user", "and?", (png,)),
    )


def test_each_image_counts_against_the_history_budget() -> None:
    """An image costs IMAGE_CHARS: a past message with one no longer fits a small budget."""
    png = Image("image/png", b"\x89PNG")
    history = [
        HistoryMessage(
            "u-1", "user", "a", "complete", 0.0, images=(ImageRef("i-1", "image/png", 4),)
        )
    ]
    assert upstream_messages(history, "", "b", 1000, (), {"i-1": png}) == (
        ChatMessage("user", "b"),
    )
    assert past_image_ids(history, "b", (), 1000) == []
    assert len(upstream_messages(history, "", "b", 3000, (), {"i-1": png})) == 2
