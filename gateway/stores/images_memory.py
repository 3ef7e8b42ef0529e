"""One instance: images in this process, forgotten with their conversation."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping

from .images import StoredImage, UploadSlot


class MemoryImageStore:
    """Images in a dict, indexed by conversation; each image's bytes are held once (the
    object the turn decoded). They go when their conversation is cleared, deleted or
    forgotten by the memory conversation store (it calls :meth:`forget`).

    A pending upload (no message has named it yet) also has a deadline: at most
    ``max_pending`` per conversation, each forgotten ``pending_ttl_s`` after its slot was
    taken. Deadlines are kept in the order they were given (one TTL for all: that is
    expiry order), and swept from the front on each call and every ``pending_ttl_s`` by
    :meth:`run`: no timer per image."""

    def __init__(
        self,
        max_pending: int = 8,
        pending_ttl_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._images: dict[str, StoredImage] = {}
        self._by_conversation: dict[str, set[str]] = {}
        self._max_pending = max_pending
        self._pending_ttl = pending_ttl_s
        self._clock = clock
        self._pending: dict[str, dict[str, float]] = {}  # conversation: {image id: deadline}
        self._deadlines: deque[tuple[float, str, str]] = deque()  # (deadline, conv, image)

    def __len__(self) -> int:
        self._sweep()
        return len(self._images)

    @property
    def bytes(self) -> int:
        """The image bytes held."""
        self._sweep()
        return sum(len(image.data) for image in self._images.values())

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._pending_ttl)
            self._sweep()

    async def aclose(self) -> None:
        pass

    async def put(self, image_id: str, image: StoredImage) -> None:
        self._images[image_id] = image
        self._by_conversation.setdefault(image.conversation_id, set()).add(image_id)

    async def get(self, image_id: str) -> StoredImage | None:
        self._sweep()
        return self._images.get(image_id)

    async def get_many(self, image_ids: Iterable[str]) -> dict[str, StoredImage]:
        self._sweep()
        images = self._images
        return {i: images[i] for i in image_ids if i in images}

    async def touch(self, conversation_id: str) -> None:
        pass  # (they live until their conversation is forgotten)

    async def drop_conversation(self, conversation_id: str) -> None:
        self.forget(conversation_id)

    def forget(self, conversation_id: str) -> None:
        """Drop the conversation's images now (no await: the conversation store's eviction)."""
        self._pending.pop(conversation_id, None)
        for image_id in self._by_conversation.pop(conversation_id, ()):
            self._images.pop(image_id, None)

    async def reserve_upload(self, conversation_id: str, image_id: str) -> UploadSlot:
        now = self._clock()
        self._sweep(now)
        pending = self._pending.setdefault(conversation_id, {})
        if len(pending) >= self._max_pending:
            wait = min(pending.values()) - now
            return UploadSlot(False, max(1, math.ceil(wait)))
        deadline = now + self._pending_ttl
        pending[image_id] = deadline
        self._deadlines.append((deadline, conversation_id, image_id))
        return UploadSlot(True)

    async def put_upload(self, image_id: str, image: StoredImage) -> None:
        if image_id in self._pending.get(image.conversation_id, {}):  # (not expired meanwhile)
            await self.put(image_id, image)

    async def release_upload(self, conversation_id: str, image_id: str) -> None:
        self._drop_pending(conversation_id, image_id)

    async def adopt(self, images: Mapping[str, StoredImage]) -> None:
        for image_id, image in images.items():
            pending = self._pending.get(image.conversation_id)
            if pending is not None:
                pending.pop(image_id, None)
            if image_id not in self._images:  # (expired between its lookup and now)
                await self.put(image_id, image)

    def _sweep(self, now: float | None = None) -> None:
        """Forget the pending uploads whose deadline has passed (from the front: O(expired))."""
        deadlines = self._deadlines
        if not deadlines:
            return
        now = self._clock() if now is None else now
        while deadlines and deadlines[0][0] <= now:
            deadline, conversation_id, image_id = deadlines.popleft()
            if self._pending.get(conversation_id, {}).get(image_id) == deadline:
                self._drop_pending(conversation_id, image_id)

    def _drop_pending(self, conversation_id: str, image_id: str) -> None:
        pending = self._pending.get(conversation_id)
        if pending is None or pending.pop(image_id, None) is None:
            return
        if not pending:
            del self._pending[conversation_id]
        self._images.pop(image_id, None)
        ids = self._by_conversation.get(conversation_id)
        if ids is not None:
            ids.discard(image_id)
            if not ids:
                del self._by_conversation[conversation_id]
