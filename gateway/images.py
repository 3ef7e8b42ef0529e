"""Images in a ``message`` (contract section 11): the checks, with no I/O.

A client sends each image as a ``data:`` URL (png, jpeg, webp or gif, base64) or, where
``limits.allow_image_urls``, an ``https://`` URL, or names one it uploaded before
(``POST /api/v1/images``, :func:`check_upload`; an extension, docs/protocol.md).
:func:`check_images` turns them into :class:`~gateway.llm.events.Image` values (an uploaded
one stays a :class:`~gateway.protocol.UploadedImage` for the turn to look up) or refuses the
lot with :class:`~gateway.errors.BadImage` naming the problem. A ``data:`` URL is decoded once: the
media type is taken from the bytes' magic numbers (the declared one must agree), and the
decoded bytes are the only copy the gateway keeps (the store and the upstream request share
them).
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from . import protocol
from .config import LimitsConfig
from .errors import BadImage
from .frame_images import DecodedImage
from .llm.events import Image
from .protocol import UploadedImage
from .stores.images import StoredImage

MEDIA_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
MAX_URL_CHARS = 2048


def sniff(data: bytes | bytearray) -> str | None:
    """The media type the bytes' magic numbers say, among :data:`MEDIA_TYPES`, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True, slots=True)
class KeptImage(Image):
    """An image already kept under ``id`` (uploaded before its message): the turn lists it
    under that id and does not store it again."""

    id: str = ""


def check_images(
    raw: Sequence[str | UploadedImage | protocol.StreamedImage | DecodedImage],
    limits: LimitsConfig,
    *,
    vision: bool = True,
) -> tuple[Image | UploadedImage, ...]:
    """The images of one message, checked in order: the assistant takes images at all, the
    count, then each image (its number, from 1, named in the error). An uploaded image was
    checked when it came; the turn finds it (:func:`with_uploads`)."""
    if not raw:
        return ()
    if not vision:
        raise BadImage("this assistant's model takes no images")
    if len(raw) > limits.max_images_per_message:
        raise BadImage(f"{len(raw)} images; the limit is {limits.max_images_per_message} a message")
    return tuple(_check_one(value, number, limits) for number, value in enumerate(raw, 1))


def _check_one(
    value: str | UploadedImage | protocol.StreamedImage | DecodedImage,
    number: int,
    limits: LimitsConfig,
) -> Image | UploadedImage:
    if isinstance(value, UploadedImage):
        return value
    if isinstance(value, DecodedImage):
        return _check_decoded(value, number, limits)
    if isinstance(value, protocol.StreamedImage):
        raise BadImage(f"image {number}: must be a data: URL")
    return _check(value, number, limits)


def _check_decoded(image: DecodedImage, number: int, limits: LimitsConfig) -> Image:
    """A data: URL decoded as its frame arrived: the checks of :func:`_check`, in its order
    and words."""
    where = f"image {number}"
    declared = image.declared.strip().lower()
    if declared not in MEDIA_TYPES:
        raise BadImage(f"{where}: type {declared[:40]!r} is not accepted (png, jpeg, webp or gif)")
    if image.size > limits.max_image_bytes:
        raise BadImage(f"{where}: {image.size} bytes; the limit is {limits.max_image_bytes} bytes")
    if image.size <= 0 and image.valid:
        raise BadImage(f"{where}: empty")
    if not image.valid or image.data is None:
        raise BadImage(f"{where}: not valid base64")
    return _checked_bytes(image.data, declared, where)


def with_streamed_images(
    msg: protocol.Message, streamed: Mapping[str, DecodedImage]
) -> protocol.Message:
    """``msg`` with each placeholder the socket left (a ``data:`` URL it decoded as the
    frame arrived, gateway.frame_images) replaced by that decoded image. A placeholder it
    did not leave stays, and is refused as no image."""
    if not any(isinstance(image, protocol.StreamedImage) for image in msg.images):
        return msg
    images = tuple(
        streamed.get(image.key, image) if isinstance(image, protocol.StreamedImage) else image
        for image in msg.images
    )
    return replace(msg, images=images)


def check_upload(declared: str, length: int | None, limits: LimitsConfig) -> str:
    """An upload's ``Content-Type`` and ``Content-Length``, before its body is read: the
    media type (lower case). Its bytes' magic numbers are checked once read
    (:func:`check_uploaded_bytes`)."""
    media_type = declared.strip().lower()
    if media_type not in MEDIA_TYPES:
        raise BadImage(f"type {media_type[:40]!r} is not accepted (png, jpeg, webp or gif)")
    if length is None:
        raise BadImage("say the image's size up front (Content-Length)")
    if length > limits.max_image_bytes:
        raise BadImage(f"{length} bytes; the limit is {limits.max_image_bytes} bytes")
    if length == 0:
        raise BadImage("empty")
    return media_type


def check_uploaded_bytes(data: bytes | bytearray, media_type: str) -> None:
    """An uploaded image's bytes are the type it was sent as (magic numbers)."""
    actual = sniff(data)
    if actual is None:
        raise BadImage("the data is not a png, jpeg, webp or gif image")
    if actual != media_type:
        raise BadImage(f"declared {media_type} but the data is {actual}")


def with_uploads(
    checked: Sequence[Image | UploadedImage],
    conversation_id: str,
    kept: Mapping[str, StoredImage],
    pending_ttl_s: float,
) -> tuple[Image, ...]:
    """The message's images, each uploaded one taken from ``kept`` (what the store holds of
    their ids, its bytes not copied); refused when it holds one not (never uploaded, gone
    with its conversation, or not named within ``pending_ttl_s`` of its upload), or holds
    it for another conversation."""
    images: list[Image] = []
    for number, image in enumerate(checked, 1):
        if not isinstance(image, UploadedImage):
            images.append(image)
            continue
        found = kept.get(image.id)
        if found is None or found.conversation_id != conversation_id:
            raise BadImage(
                f"image {number}: no uploaded image {image.id!r} in this conversation"
                f" (an upload no message names expires after {pending_ttl_s:g} s)"
            )
        images.append(KeptImage(media_type=found.media_type, data=found.data, id=image.id))
    return tuple(images)


def _check(value: str, number: int, limits: LimitsConfig) -> Image:
    where = f"image {number}"
    if value.startswith("https://"):
        if not limits.allow_image_urls:
            raise BadImage(f"{where}: image URLs are not accepted here; send a data: URL")
        if len(value) > MAX_URL_CHARS or len(value) <= len("https://") or not value.isprintable():
            raise BadImage(f"{where}: not a usable https:// URL")
        return Image(url=value)
    if not value.startswith("data:"):
        raise BadImage(
            f"{where}: must be a data: URL"
            + (" or an https:// URL" if limits.allow_image_urls else "")
        )
    comma = value.find(",", 0, 100)  # (the head only: the payload is not copied apart)
    head = value[:comma]
    if comma < 0 or not head.endswith(";base64"):
        raise BadImage(f"{where}: must be a base64 data: URL (data:image/png;base64,...)")
    declared = head[len("data:") : -len(";base64")].strip().lower()
    if declared not in MEDIA_TYPES:
        raise BadImage(f"{where}: type {declared[:40]!r} is not accepted (png, jpeg, webp or gif)")
    # The decoded size, from the text's length, before anything is decoded.
    size = (len(value) - comma - 1) * 3 // 4 - value[-2:].count("=")
    if size > limits.max_image_bytes:
        raise BadImage(f"{where}: {size} bytes; the limit is {limits.max_image_bytes} bytes")
    if len(value) == comma + 1:
        raise BadImage(f"{where}: empty")
    data = _decode(value, comma + 1, size) if size > 0 else None
    if data is None:
        raise BadImage(f"{where}: not valid base64")
    return _checked_bytes(data, declared, where)


def _checked_bytes(data: bytearray, declared: str, where: str) -> Image:
    actual = sniff(data)
    if actual is None:
        raise BadImage(f"{where}: the data is not a png, jpeg, webp or gif image")
    if actual != declared:
        raise BadImage(f"{where}: declared {declared} but the data is {actual}")
    return Image(media_type=actual, data=data)


def _decode(text: str, start: int, size: int) -> bytearray | None:
    """The base64 ``text[start:]``, ``size`` bytes, decoded piece by piece into one buffer:
    the image's bytes are its only copy (no slice of the text, no bytes object made from a
    whole buffer). None: not strict base64 of that size."""
    out = bytearray(size)
    at = 0
    try:
        for begin in range(start, len(text), DECODE_PIECE):
            piece = binascii.a2b_base64(text[begin : begin + DECODE_PIECE], strict_mode=True)
            if at + len(piece) > size:
                return None
            out[at : at + len(piece)] = piece
            at += len(piece)
    except (binascii.Error, ValueError):
        return None
    return out if at == size else None


DECODE_PIECE = 4 * 16 * 1024  # base64 characters decoded at a time (a multiple of 4)


def frame_too_big(data: str, max_frame_bytes: int, frame: object = None) -> bool:
    """Whether a client text frame is over the limit it may have: ``max_frame_bytes``,
    unless it is a ``message`` with images (the socket itself stops those at
    ``limits.max_image_frame_bytes``). Before parsing (``frame`` None), a frame that cannot
    be one with images is judged at once; after, ``frame`` decides."""
    if len(data) * 4 <= max_frame_bytes:  # (UTF-8: at most 4 bytes a character)
        return False
    if len(data) <= max_frame_bytes and len(data.encode()) <= max_frame_bytes:
        return False
    if frame is None:
        return '"images"' not in data
    # (Only a URL makes a frame big: an uploaded image is named by its id.)
    return not any(isinstance(image, str) for image in getattr(frame, "images", ()))
