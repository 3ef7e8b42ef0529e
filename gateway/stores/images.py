"""The images seam: the bytes of the images users sent, kept with their conversation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


@dataclass(frozen=True, slots=True)
class UploadSlot:
    """The answer to :meth:`ImageStore.reserve_upload`: whether the upload may be read and
    kept; if not, the seconds until a slot frees (the oldest pending upload expires)."""

    granted: bool
    retry_after_s: int = 0


class ImageStore(Lifecycle, Protocol):
    """Where the images of user messages live, for every instance (contract section 11).

    An image belongs to one conversation and lives as long as it: :meth:`touch` is called
    when the conversation is written, and :meth:`drop_conversation` when it is cleared or
    deleted. ``get`` answers None for an unknown or expired id. Trouble in shared state
    raises :class:`~gateway.errors.StoreUnavailable`.

    An upload (``POST /api/v1/images``) is *pending* until a message names it: at most
    ``limits.max_pending_images`` per conversation (:meth:`reserve_upload` before its body
    is read, :meth:`put_upload` once checked, :meth:`release_upload` if it fails), each
    forgotten ``limits.pending_image_ttl_s`` after its reservation unless :meth:`adopt` (the
    message naming it) makes it live with the conversation as any other kept image. An
    expired pending upload no longer counts, and ``get`` answers None for it.
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

    async def reserve_upload(self, conversation_id: str, image_id: str) -> UploadSlot:
        """Take one of the conversation's pending-upload slots for ``image_id``, or say when
        one frees (nothing is kept then)."""
        ...

    async def put_upload(self, image_id: str, image: StoredImage) -> None:
        """Keep a checked upload whose slot :meth:`reserve_upload` granted, until the slot's
        expiry."""
        ...

    async def release_upload(self, conversation_id: str, image_id: str) -> None:
        """Free the slot of an upload that failed (its body refused or cut short)."""
        ...

    async def adopt(self, images: Mapping[str, StoredImage]) -> None:
        """The uploads a message named (id: the image, as ``get_many`` found it): no longer
        pending, they live with their conversation (one that expired meanwhile is kept
        again from the bytes given)."""
        ...
