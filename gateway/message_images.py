"""A message's images across its turns: kept with the conversation when it is sent, and
sent upstream again with the past turns that fit the history budget, or with the message
itself when a ``regenerate`` or an ``edit`` asks it again.

The checks are :mod:`gateway.images` (pure); which past images go upstream is
:func:`gateway.turn_rules.past_image_ids` (pure); the bytes are the image store's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import protocol
from .config import Config
from .conversations import Conversation, HistoryMessage, ImageRef, new_id
from .images import KeptImage, check_images, with_uploads
from .llm.events import Image
from .stores.images import ImageStore, StoredImage
from .turn_rules import past_image_ids


@dataclass(eq=False, slots=True)
class MessageImages:
    """The I/O shell for the images of a conversation's messages.

    Contract: :meth:`checked` refuses a message's images (:class:`~gateway.errors.BadImage`)
    before anything is spent on its turn, and takes the uploaded ones from the store;
    :meth:`keep` stores a started turn's images with its conversation (the decoded bytes,
    never a copy) and returns the references history keeps; :meth:`of` and :meth:`past`
    read them back as they go upstream again, only those the store still has (a lost one
    is left out, never an error); :meth:`drop` forgets all of a conversation's images.
    """

    config: Config
    store: ImageStore

    async def checked(self, conv: Conversation, msg: protocol.Message) -> tuple[Image, ...]:
        """A ``message``'s images, checked (and decoded, once) for its conversation's
        assistant, the uploaded ones (``POST /api/v1/images``) taken from the store. (An
        assistant gone from the config fails the turn further on, as any turn of it does.)"""
        assistant = self.config.assistants.get(conv.assistant)
        vision = assistant is None or assistant.vision
        checked = check_images(msg.images, self.config.limits, vision=vision)
        ids = [image.id for image in checked if isinstance(image, protocol.UploadedImage)]
        kept = await self.store.get_many(ids) if ids else {}
        return with_uploads(checked, conv.id, kept, self.config.limits.pending_image_ttl_s)

    async def keep(self, conv: Conversation, images: tuple[Image, ...]) -> tuple[ImageRef, ...]:
        """Store this turn's images with the conversation (the decoded bytes, not a copy)."""
        refs: list[ImageRef] = []
        uploads: dict[str, StoredImage] = {}
        for image in images:
            if isinstance(image, KeptImage):  # (uploaded before the message: kept already)
                refs.append(ImageRef(image.id, image.media_type, len(image.data or b"")))
                uploads[image.id] = StoredImage(conv.id, image.media_type, image.data or b"")
                continue
            if image.url is not None:
                refs.append(ImageRef(new_id("i"), "", 0, url=image.url))
                continue
            data = image.data or b""
            ref = ImageRef(new_id("i"), image.media_type, len(data))
            await self.store.put(ref.id, StoredImage(conv.id, image.media_type, data))
            refs.append(ref)
        if uploads:  # (named now: no longer pending, they live with the conversation)
            await self.store.adopt(uploads)
        return tuple(refs)

    async def of(self, message: HistoryMessage) -> tuple[Image, ...]:
        """A past message's images as they go upstream again: its URLs, and the kept ones
        its conversation's store still has."""
        ids = [ref.id for ref in message.images if not ref.url]
        found = await self.store.get_many(ids) if ids else {}
        return tuple(
            Image(url=ref.url)
            if ref.url
            else Image(media_type=found[ref.id].media_type, data=found[ref.id].data)
            for ref in message.images
            if ref.url or ref.id in found
        )

    async def past(
        self,
        conv: Conversation,
        text: str,
        images: tuple[Image, ...],
        budget: int,
        history: Sequence[HistoryMessage] | None = None,
    ) -> dict[str, Image]:
        """The kept images of the past turns (``history``: the conversation's messages by
        default) that go upstream again; their lifetime renewed with the conversation's."""
        history = conv.messages if history is None else history
        ids = past_image_ids(history, text, images, budget)
        if any(message.images for message in conv.messages):
            await self.store.touch(conv.id)
        if not ids:
            return {}
        found = await self.store.get_many(ids)
        return {
            i: Image(media_type=image.media_type, data=image.data) for i, image in found.items()
        }

    async def drop(self, conv: Conversation) -> None:
        """Forget every image of the conversation (a reset, a delete)."""
        await self.store.drop_conversation(conv.id)
