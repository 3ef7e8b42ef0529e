"""The images seam: the bytes of the images users sent, kept with their conversation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from .lifecycle import Lifecycle


@dataclass(frozen=True, slots=True)
class StoredImage:
    """One kept image: the conversation it belongs to (who may read it follows from
    that), its media type and its bytes."""

    conversation_id: str
    media_type: str
    data: bytes | bytearray


class ImageStore(Lifecycle, Protocol):
    """Where the images of user messages live, for every instance (contract section 11).

    An image belongs to one conversation and lives as long as it: :meth:`touch` is called
    when the conversation is written, and :meth:`drop_conversation` when it is cleared or
    deleted. ``get`` answers None for an unknown or expired id. Trouble in shared state
    raises :class:`~gateway.errors.StoreUnavailable`.
    """

    async def put(self, image_id: str, image: StoredImage) -> None: ...

    async def get(self, image_id: str) -> StoredImage | None: ...

    async def get_many(self, image_ids: Iterable[str]) -> dict[str, StoredImage]:
        """The ones of ``image_ids`` still kept (a later turn sends them upstream again)."""
        ...

    async def touch(self, conversation_id: str) -> None:
        """Keep the conversation's images as long as the conversation from now."""
        ...

    async def drop_conversation(self, conversation_id: str) -> None:
        """Forget every image of the conversation (its history was cleared, or it is gone)."""
        ...
