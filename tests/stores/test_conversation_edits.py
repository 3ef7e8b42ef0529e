"""The snapshot edits both conversation stores make, on plain conversations."""

from __future__ import annotations

from gateway.conversations import Claim, Conversation, HistoryMessage
from gateway.stores import conversation_edits as edits


def _conv(title: str = "") -> Conversation:
    return Conversation("c1", "alice", "person", "default", title=title)


def _msg(i: int, role: str = "user", content: str | None = None) -> HistoryMessage:
    text = f"text {i}" if content is None else content
    return HistoryMessage(f"m-{i}", role, text, "complete", float(i))  # type: ignore[arg-type]


def test_new_title_is_the_first_user_message_cut_to_80_characters() -> None:
    """An untitled conversation takes its first user message's first 80 characters."""
    messages = (_msg(0, "assistant"), _msg(1, content="x" * 100), _msg(2))
    assert edits.new_title(_conv(), messages) == "x" * 80
    assert edits.new_title(_conv(), (_msg(0, "assistant"),)) == ""


def test_a_titled_conversation_keeps_its_title() -> None:
    """A conversation with a title gets no new one from its messages."""
    conv = _conv("Named")
    edits.append(conv, (_msg(0),), max_messages=5, now=7.0, title=edits.new_title(conv, (_msg(0),)))
    assert conv.title == "Named" and conv.updated_at == 7.0


def test_append_keeps_the_newest_max_messages() -> None:
    """Past max_messages the oldest messages go; the time and title are set."""
    conv = _conv()
    edits.append(conv, (_msg(0), _msg(1)), max_messages=3, now=1.0, title="text 0")
    edits.append(conv, (_msg(2), _msg(3)), max_messages=3, now=2.0, title="")
    assert [m.id for m in conv.messages] == ["m-1", "m-2", "m-3"]
    assert (conv.title, conv.updated_at) == ("text 0", 2.0)


def test_set_text_changes_a_held_message_and_not_a_gone_one() -> None:
    """set_text answers the changed message, or None when the history lacks it."""
    conv = _conv()
    conv.messages = [_msg(0), _msg(1, "assistant")]
    changed = edits.set_text(conv, "m-1", "done", "incomplete", "why")
    assert changed is conv.messages[1]
    assert (changed.content, changed.status, changed.reasoning) == ("done", "incomplete", "why")
    assert edits.set_text(conv, "m-9", "x", "complete", "") is None


def test_keep_first_drops_the_rest_of_the_history() -> None:
    """keep_first(n) leaves the first n messages."""
    conv = _conv()
    conv.messages = [_msg(i) for i in range(4)]
    edits.keep_first(conv, 1)
    assert [m.id for m in conv.messages] == ["m-0"]


def test_only_a_started_claim_marks_the_running_reply() -> None:
    """A started claim runs the reply and remembers its client id; busy changes nothing."""
    conv = _conv()
    busy = edits.mark_claimed(conv, Claim("busy", "r-0"), "r-1", "c-1")
    assert busy.outcome == "busy" and conv.running is None and conv.replies_by_client_id == {}
    edits.mark_claimed(conv, Claim("started"), "r-1", "c-1")
    assert conv.running == "r-1" and conv.replies_by_client_id == {"c-1": "r-1"}


def test_ending_another_reply_leaves_the_running_one() -> None:
    """end_reply frees the conversation only for the reply that runs."""
    conv = _conv()
    conv.running = "r-2"
    edits.end_reply(conv, "r-1")
    assert conv.running == "r-2"
    edits.end_reply(conv, "r-2")
    assert conv.running is None


def test_clear_keeps_the_running_reply_and_empty_drops_it() -> None:
    """clear_history empties history and client ids; empty also drops the running reply."""
    conv = _conv()
    conv.messages, conv.replies_by_client_id, conv.running = [_msg(0)], {"c": "r"}, "r"
    edits.clear_history(conv)
    assert (conv.messages, conv.replies_by_client_id, conv.running) == ([], {}, "r")
    edits.empty(conv)
    assert conv.running is None


def test_rename_sets_the_title_and_time() -> None:
    """rename sets the title and the time it was written."""
    conv = _conv("Old")
    edits.rename(conv, "New", 9.0)
    assert (conv.title, conv.updated_at) == ("New", 9.0)
