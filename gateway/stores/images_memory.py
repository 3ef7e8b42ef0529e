"""One instance: images in this process, forgotten with their conversation."""

from __future__ import annotations

from collections.abc import Iterable

from .images import StoredImage


class MemoryImageStore:
    """Images in a dict, indexed by conversation; each image's bytes are held once (the
    object the turn decoded). They go when their conversation is cleared, deleted or
    forgotten by the memory conversation store (it calls :meth:`forget`)."""

    def __init__(self) -> None:
        self._images: dict[str, StoredImage] = {}
        self._by_conversation: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._images)

    @property
    def bytes(self) -> int:
        """The image bytes held."""
        return sum(len(image.data) for image in self._images.values())

    async def run(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def put(self, image_id: str, image: StoredImage) -> None:
        self._images[image_id] = image
        self._by_conversation.setdefault(image.conversation_id, set()).add(image_id)

    async def get(self, image_id: str) -> StoredImage | None:
        return self._images.get(image_id)

    async def get_many(self, image_ids: Iterable[str]) -> dict[str, StoredImage]:
        images = self._images
        return {i: images[i] for i in image_ids if i in images}

    async def touch(self, conversation_id: str) -> None:
        pass  # (they live until their conversation is forgotten)

    async def drop_conversation(self, conversation_id: str) -> None:
        self.forget(conversation_id)

    def forget(self, conversation_id: str) -> None:
        """Drop the conversation's images now (no await: the conversation store's eviction)."""
        for image_id in self._by_conversation.pop(conversation_id, ()):
            self._images.pop(image_id, None)
