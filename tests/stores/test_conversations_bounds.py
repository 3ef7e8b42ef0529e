"""Memory mode's bounded conversations, driven directly with plain conversations."""

from __future__ import annotations

from gateway.conversations import Conversation, HistoryMessage
from gateway.stores.conversations_bounds import (
    CONVERSATION_BYTES,
    BoundedConversations,
    is_anonymous,
    message_bytes,
)


def _kept(
    viewed: set[str] | None = None, forgotten: list[str] | None = None, **bounds: int
) -> BoundedConversations:
    seen = viewed if viewed is not None else set()
    gone = forgotten if forgotten is not None else []
    return BoundedConversations(
        anonymous_ttl_s=0.0,
        max_conversations=bounds.get("max_conversations", 0),
        max_bytes=bounds.get("max_bytes", 0),
        viewed=lambda: seen,
        on_forget=gone.append,
    )


def _conv(i: int, owner: str = "alice") -> Conversation:
    return Conversation(f"c{i}", owner, "person", "default")


async def test_past_the_count_the_least_recently_used_idle_one_goes() -> None:
    """With max_conversations = 16 a seventeenth goes down to 15, oldest unused first,
    sparing a running, a viewed and a recently used one; on_forget hears of each."""
    forgotten: list[str] = []
    kept = _kept({"c1"}, forgotten, max_conversations=16)
    convs = [_conv(i) for i in range(17)]
    convs[0].running = "r-0"
    for conv in convs[:16]:
        kept.put(conv)
    kept.use("c2")
    kept.put(convs[16])
    assert forgotten == ["c3", "c4"] and len(kept) == 15
    assert kept.get("c0") is convs[0] and kept.get("c2") is convs[2]
    kept.close()


async def test_written_counts_the_history_bytes_and_forget_returns_them() -> None:
    """A write counts the history's bytes again; forgetting takes them off."""
    kept = _kept()
    conv = _conv(1)
    kept.put(conv)
    assert kept.history_bytes == CONVERSATION_BYTES
    conv.messages.append(HistoryMessage("m", "user", "hello", "complete", 0.0))
    kept.written(conv)
    assert kept.history_bytes == CONVERSATION_BYTES + message_bytes(conv.messages[0])
    kept.forget("c1")
    assert kept.history_bytes == 0 and not kept.holds(conv)
    kept.written(conv)  # forgotten meanwhile: counts for nothing
    assert kept.history_bytes == 0


def test_text_bytes_follow_python_storage_and_anonymous_ids_are_recognised() -> None:
    """One astral character makes each character 4 bytes; anon- ids are anonymous."""
    plain = HistoryMessage("m", "assistant", "a" * 1000, "complete", 0.0)
    astral = HistoryMessage("m", "assistant", "a" * 999 + "😀", "complete", 0.0)
    assert message_bytes(astral) - message_bytes(plain) >= 2900
    assert is_anonymous("anon-abc") and not is_anonymous("alice")
