"""Images in memory: kept once, dropped with their conversation, however it goes."""

from __future__ import annotations

from gateway.conversations import HistoryMessage
from gateway.stores.conversations_memory import MemoryConversationStore
from gateway.stores.images import StoredImage
from gateway.stores.images_memory import MemoryImageStore

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


async def test_the_memory_store_forgets_images_with_their_conversation() -> None:
    """forget (the memory conversation store's eviction) drops that conversation's images only."""
    store = MemoryImageStore()
    await store.put("i-1", StoredImage("c1", "image/png", PNG))
    await store.put("i-2", StoredImage("c2", "image/png", PNG))
    store.forget("c1")
    assert await store.get("i-1") is None and await store.get("i-2") is not None


async def test_a_conversation_the_memory_store_forgets_takes_its_images() -> None:
    """The conversation store's eviction (here: past max_conversations) drops the images."""
    images = MemoryImageStore()
    store = MemoryConversationStore(10, max_conversations=1, on_forget=images.forget)
    try:
        old = await store.create("c1", "alice", "person", "default")
        await store.add_messages(old, HistoryMessage("u-1", "user", "x", "complete", 1.0))
        await images.put("i-1", StoredImage("c1", "image/png", PNG))
        await store.create("c2", "alice", "person", "default")
        await store.create("c3", "alice", "person", "default")
        assert await store.get("c1") is None
        assert await images.get("i-1") is None
    finally:
        await store.aclose()
