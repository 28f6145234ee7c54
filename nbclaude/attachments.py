"""What a prompt carries besides text: images, PDFs and files, made into content blocks.

A value filled into ``{{ name }}``, a path given to ``-f``, or an item of the prompt list
:func:`nbclaude.ask` takes becomes an :class:`Attachment` when it is an image (a PIL
image, a matplotlib figure, an ``IPython.display.Image``, PNG/JPEG/GIF/WebP bytes) or a
``pathlib.Path`` to an image, a PDF or a text file. An attachment knows its content block,
and a short placeholder (``[image 800×600 PNG, 41 KB]``) that stands for it wherever bytes
would be too many: dry runs, the run log, the conversation's history.

Images larger than the API's guidance are downscaled before they are sent, and the API's
limits are checked before anything is sent (:func:`check_limits`), each refusal an
:class:`AttachmentError` of one line. Nothing here imports IPython, Pillow or matplotlib:
their types are recognised only when the user's code has loaded them.
"""

from __future__ import annotations

import base64
import binascii
import copy
import io
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from . import images
from .errors import RequestError

__all__ = [
    "MANY_IMAGES",
    "MAX_IMAGES",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_EDGE",
    "MAX_IMAGE_EDGE_MANY",
    "MAX_REQUEST_BYTES",
    "Attachment",
    "AttachmentError",
    "Part",
    "attachment_of",
    "block_placeholder",
    "check_limits",
    "content_blocks",
    "from_path",
    "human_size",
    "prompt_parts",
    "redacted",
]

MAX_IMAGE_BYTES = 5 * 1024 * 1024
"""The most base64 characters one image may take in a request."""

MAX_IMAGE_EDGE = 8000
"""The widest or tallest image, in pixels, the API accepts."""

MAX_IMAGE_EDGE_MANY = 2000
"""The widest or tallest image when a request holds more than :data:`MANY_IMAGES`."""

MANY_IMAGES = 20
"""Beyond this many images in one request, each must fit :data:`MAX_IMAGE_EDGE_MANY`."""

MAX_IMAGES = 600
"""The most images in one request (100 on models with a 200k-token context window, which
the API checks itself)."""

MAX_REQUEST_BYTES = 32 * 1024 * 1024
"""The largest request body the Messages API takes: PDFs and images count in base64."""

Kind = Literal["image", "pdf", "text"]


class AttachmentError(RequestError):
    """An image, PDF or file cannot be sent as it is; nothing was sent."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """An image, a PDF or a text file, ready to send as a content block."""

    kind: Kind
    """``image``, ``pdf`` or ``text``."""
    data: bytes
    """The bytes sent: the image after any downscaling, the PDF, the file's UTF-8 text."""
    media_type: str
    """``image/png``, ``image/jpeg``, ``image/gif``, ``image/webp``, ``application/pdf`` or
    ``text/plain``."""
    name: str
    """Where it came from: a file's name, or the ``{{ name }}`` that filled it."""
    size: tuple[int, int] | None = None
    """An image's width and height as sent, in pixels, when known."""
    original_size: tuple[int, int] | None = None
    """An image's size before it was downscaled; ``None`` if it was sent as it came."""
    note: str | None = None
    """Something the user should know about how it was sent."""

    def block(self) -> dict[str, Any]:
        """The content block of the Messages API that carries it."""
        if self.kind == "text":
            text = self.data.decode()
            return {"type": "text", "text": f'<file name="{self.name}">\n{text}\n</file>'}
        source = {
            "type": "base64",
            "media_type": self.media_type,
            "data": base64.b64encode(self.data).decode("ascii"),
        }
        if self.kind == "pdf":
            return {"type": "document", "source": source, "title": self.name}
        return {"type": "image", "source": source}

    def placeholder(self) -> str:
        """A short stand-in for it: ``[image 800×600 PNG, 41 KB]``, ``[PDF paper.pdf, 1.2 MB]``."""
        if self.kind == "image":
            return _image_placeholder(self.media_type, self.size, len(self.data))
        label = "PDF" if self.kind == "pdf" else "file"
        return f"[{label} {self.name}, {human_size(len(self.data))}]"

    def describe(self) -> str:
        """The placeholder, the original size of a downscaled image, and any note."""
        text = self.placeholder()
        if self.original_size is not None:
            text += f" downscaled from {_pixels(self.original_size)}"
        if self.note:
            text += f" ({self.note})"
        return text


Part = str | Attachment
"""One piece of a prompt, in order: text, or something attached."""


def human_size(count: int) -> str:
    """A byte count as people read it: ``512 bytes``, ``41 KB``, ``1.2 MB``."""
    if count < 1024:
        return f"{count} bytes"
    if count < 1024 * 1024:
        return f"{round(count / 1024)} KB"
    return f"{count / (1024 * 1024):.1f} MB"


def _pixels(size: tuple[int, int]) -> str:
    return f"{size[0]}×{size[1]}"


def _image_placeholder(media_type: str, size: tuple[int, int] | None, length: int) -> str:
    kind = media_type.removeprefix("image/").upper()
    pixels = f" {_pixels(size)}" if size else ""
    return f"[image{pixels} {kind}, {human_size(length)}]"


# ------------------------------------------------------------------ values and paths to blocks


def attachment_of(value: Any, name: str) -> Attachment | None:
    """``value`` as an attachment, if it is an image or a path to a file; else ``None``.

    Args:
        value: Anything: a filled template's value, an item of a prompt list.
        name: What to call it (a template's name, a file's name).

    Raises:
        AttachmentError: If it is an image or a file that cannot be sent.
    """
    if isinstance(value, Attachment):
        return value
    if isinstance(value, Path):
        return from_path(value, source=name) if value.is_file() else None
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return _image(data, name) if images.sniff(data) is not None else None
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(value, pil.Image):
        return _pil_image(value, name)
    figure = sys.modules.get("matplotlib.figure")
    if figure is not None and isinstance(value, figure.Figure):
        return _image(images.figure_png(value), name)
    display = sys.modules.get("IPython.core.display")
    if display is not None and isinstance(value, display.Image):
        data = value.data
        if not isinstance(data, bytes):
            raise AttachmentError(
                f"{name}: this IPython Image links to {value.url or 'a file'} and holds no "
                "bytes; make it with Image(data=...) or Image(filename=...)."
            )
        return _image(data, name)
    return None


def from_path(path: str | Path, *, source: str) -> Attachment:
    """The file at ``path`` as an image, a PDF or a text attachment.

    Args:
        path: The file; ``~`` is expanded, a relative path is from the working directory.
        source: How the user named it (``-f data/scan.png``), to begin each message.

    Raises:
        AttachmentError: If the file is missing, unreadable, or none of those types.
    """
    file = Path(path).expanduser()
    if not file.exists():
        raise AttachmentError(f"{source}: no such file (looked in {Path.cwd()}).")
    if not file.is_file():
        raise AttachmentError(f"{source}: is a folder, not a file.")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise AttachmentError(f"{source}: cannot be read ({exc.strerror or exc}).") from None
    if images.sniff(data) is not None:
        return _image(data, file.name)
    if data.startswith(b"%PDF-"):
        return Attachment("pdf", data, "application/pdf", file.name)
    if b"\x00" not in data:
        try:
            data.decode()
        except UnicodeDecodeError:
            pass
        else:
            return Attachment("text", data, "text/plain", file.name)
    converted = _converted(data, file.name)
    if converted is None:
        raise AttachmentError(
            f"{source}: not an image (PNG, JPEG, GIF, WebP), a PDF or a UTF-8 text file."
        )
    return converted


def _image(data: bytes, name: str) -> Attachment:
    """PNG, JPEG, GIF or WebP bytes as an image attachment, downscaled when too large."""
    sniffed = images.sniff(data)
    if sniffed is None:
        raise AttachmentError(f"{name}: not a PNG, JPEG, GIF or WebP image.")
    size = sniffed.size
    if size is None or max(size) <= images.MAX_EDGE:
        return Attachment("image", data, sniffed.media_type, name, size)
    if images.pillow() is None:
        note = f"sent at full size: install Pillow to downscale it to {images.MAX_EDGE} px"
        return Attachment("image", data, sniffed.media_type, name, size, note=note)
    try:
        smaller = images.downscaled(data)
    except (OSError, ValueError) as exc:
        raise AttachmentError(f"{name}: Pillow cannot read this image ({exc}).") from None
    if smaller is None:
        return Attachment("image", data, sniffed.media_type, name, size)
    resized, new_size = smaller
    media_type = images.MEDIA_TYPES["JPEG" if sniffed.format == "JPEG" else "PNG"]
    return Attachment("image", resized, media_type, name, new_size, original_size=size)


def _pil_image(image: Any, name: str) -> Attachment:
    try:
        data = images.encode(image)
    except (OSError, ValueError) as exc:
        raise AttachmentError(f"{name}: this PIL image cannot be saved ({exc}).") from None
    return _image(data, name)


def _converted(data: bytes, name: str) -> Attachment | None:
    """Another image format Pillow reads (BMP, TIFF...) as PNG; ``None`` if it reads none."""
    module = images.pillow()
    if module is None:
        return None
    try:
        with module.open(io.BytesIO(data)) as image:
            image.load()
            return _pil_image(image, name)
    except (OSError, ValueError, module.DecompressionBombError):
        return None


def prompt_parts(prompt: str | Sequence[Any], files: Iterable[Any] = ()) -> str | list[Part]:
    """The prompt :func:`nbclaude.ask` was given, files first, as text and attachments.

    Args:
        prompt: A string, or a list of strings, images and paths, sent in order.
        files: Paths (or images) to attach before the prompt.

    Returns:
        ``prompt`` itself when it is a string and nothing is attached, else the parts.

    Raises:
        AttachmentError: If an item is neither text nor something that can be attached,
            or a file cannot be sent.
    """
    parts: list[Part] = []
    for item in files:
        if isinstance(item, str | Path):
            parts.append(from_path(item, source=f"files: {item}"))
        elif (attached := attachment_of(item, type(item).__name__)) is not None:
            parts.append(attached)
        else:
            raise AttachmentError(f"files: a {type(item).__name__} is not a path or an image.")
    items = [prompt] if isinstance(prompt, str) else list(prompt)
    for position, item in enumerate(items):
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, Path):
            parts.append(from_path(item, source=f"prompt[{position}]: {item}"))
        elif (attached := attachment_of(item, f"prompt[{position}]")) is not None:
            parts.append(attached)
        else:
            raise AttachmentError(
                f"prompt[{position}]: a {type(item).__name__} is not text, an image or a "
                "path to a file; format it as text first."
            )
    if isinstance(prompt, str) and len(parts) == 1:
        return prompt
    return parts


def content_blocks(parts: Sequence[Part]) -> list[dict[str, Any]]:
    """The parts as content blocks in order; text with nothing but whitespace is dropped
    (the API refuses it)."""
    return [
        part.block() if isinstance(part, Attachment) else {"type": "text", "text": part}
        for part in parts
        if isinstance(part, Attachment) or part.strip()
    ]


# ------------------------------------------------------------------ blocks already in a request


def _base64_sources(body: Mapping[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Each image or document block carrying base64 data, and its source, in ``body``."""
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, list):
            yield from _sources_in(content)


def _sources_in(blocks: list[Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """The base64 blocks among ``blocks``, and inside the tool results among them."""
    for block in blocks:
        if not isinstance(block, dict):
            continue
        source = block.get("source")
        if isinstance(source, dict) and source.get("type") == "base64":
            yield block, source
        elif isinstance(block.get("content"), list):  # a tool's result: an image it returned
            yield from _sources_in(block["content"])


def _decoded(source: Mapping[str, Any]) -> bytes:
    try:
        return base64.b64decode(str(source.get("data", "")), validate=True)
    except (binascii.Error, ValueError):
        return b""


def block_placeholder(block: Mapping[str, Any]) -> str | None:
    """A short stand-in for an image or document block with base64 data, else ``None``."""
    source = block.get("source")
    if not isinstance(source, Mapping) or source.get("type") != "base64":
        return None
    data = _decoded(source)
    if block.get("type") == "image":
        sniffed = images.sniff(data)
        size = sniffed.size if sniffed else None
        return _image_placeholder(str(source.get("media_type", "image/?")), size, len(data))
    title = block.get("title")
    kind = "PDF" if source.get("media_type") == "application/pdf" else "document"
    named = f" {title}" if isinstance(title, str) and title else ""
    return f"[{kind}{named}, {human_size(len(data))}]"


def redacted(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a request body with each image's and document's base64 data replaced by
    its placeholder: what dry runs print and the run log keeps."""
    if not any(True for _ in _base64_sources(body)):
        return dict(body)
    copied = copy.deepcopy(dict(body))
    for block, source in _base64_sources(copied):
        source["data"] = block_placeholder(block)
    return copied


def check_limits(body: Mapping[str, Any]) -> None:
    """Refuse a request the API would refuse for its images or size, before it is sent.

    Every image in the request counts, the conversation's earlier turns included.

    Raises:
        AttachmentError: Naming the limit: the images per request, the base64 size of one
            image, the pixels of one image, or the size of the whole request.
    """
    found = [
        (block, source) for block, source in _base64_sources(body) if block.get("type") == "image"
    ]
    if len(found) > MAX_IMAGES:
        raise AttachmentError(
            f"The request holds {len(found)} images; the API takes at most {MAX_IMAGES}. "
            "Nothing was sent."
        )
    edge = MAX_IMAGE_EDGE_MANY if len(found) > MANY_IMAGES else MAX_IMAGE_EDGE
    for block, source in found:
        if len(str(source.get("data", ""))) > MAX_IMAGE_BYTES:
            raise AttachmentError(
                f"{block_placeholder(block)}: larger than 5 MB in base64, the API's limit for "
                "one image; send it smaller (Pillow downscales it to "
                f"{images.MAX_EDGE} px). Nothing was sent."
            )
        sniffed = images.sniff(_decoded(source))
        if sniffed is not None and sniffed.size is not None and max(sniffed.size) > edge:
            many = "" if edge == MAX_IMAGE_EDGE else f" with more than {MANY_IMAGES} images"
            raise AttachmentError(
                f"{block_placeholder(block)}: wider or taller than {edge} px, the API's limit"
                f"{many}; install Pillow to downscale it. Nothing was sent."
            )
    size = len(json.dumps(body, ensure_ascii=False, default=str).encode())
    if size > MAX_REQUEST_BYTES:
        raise AttachmentError(
            f"The request is {human_size(size)}, over the API's 32 MB limit (images and PDFs "
            "count in base64): attach fewer or smaller files. Nothing was sent."
        )
