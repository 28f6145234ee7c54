"""Image bytes: which format they are, how large, and (with Pillow) resized or re-encoded.

Reading a format and its pixel size needs only the standard library: the few header bytes
of PNG, JPEG, GIF and WebP files (:func:`sniff`). Everything that decodes pixels
(downscaling, thumbnails, converting other formats, encoding a PIL image or a matplotlib
figure) needs Pillow, which stays optional: :func:`pillow` says whether it is there, and is
the only place it is imported. matplotlib is never imported: a figure is only met where the
user's code made one.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = [
    "MAX_EDGE",
    "MEDIA_TYPES",
    "THUMBNAIL_EDGE",
    "Sniffed",
    "downscaled",
    "encode",
    "figure_png",
    "pillow",
    "sniff",
    "thumbnail",
]

MAX_EDGE = 1568
"""The longest edge, in pixels, an image is sent at: the API downscales anything larger
itself, which costs time to first token and gains nothing."""

THUMBNAIL_EDGE = 160
"""The longest edge of the thumbnail a reply keeps of each image it was sent."""

MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
"""The image formats the API accepts, by the name Pillow gives them."""

_JPEG_FRAMES = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), 0xCD, 0xCE})
"""JPEG markers that start a frame header (SOFn), which holds the pixel size."""


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What the first bytes of an image say."""

    format: str
    """``PNG``, ``JPEG``, ``GIF`` or ``WEBP``."""
    size: tuple[int, int] | None
    """Width and height in pixels, when the header holds them where expected."""

    @property
    def media_type(self) -> str:
        """The MIME type the API wants for this format."""
        return MEDIA_TYPES[self.format]


def sniff(data: bytes) -> Sniffed | None:
    """The format and pixel size of PNG, JPEG, GIF or WebP bytes, from their headers.

    Args:
        data: The file's bytes.

    Returns:
        What the headers say, or ``None`` if ``data`` is none of the four formats.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        size = struct.unpack(">II", data[16:24]) if data[12:16] == b"IHDR" else None
        return Sniffed("PNG", size)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("GIF", struct.unpack("<HH", data[6:10]) if len(data) >= 10 else None)
    if data.startswith(b"\xff\xd8\xff"):
        return Sniffed("JPEG", _jpeg_size(data))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return Sniffed("WEBP", _webp_size(data))
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 9 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        position += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L" and len(data) >= 25:
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def pillow() -> ModuleType | None:
    """``PIL.Image`` if Pillow is installed, else ``None``."""
    try:
        from PIL import Image
    except ImportError:
        return None
    module: ModuleType = Image  # Pillow before 10.1 has no type information
    return module


def encode(image: Any, *, keep_jpeg: bool = True) -> bytes:
    """A PIL image as PNG bytes, or as JPEG when it came from a JPEG and has no alpha.

    Args:
        image: A ``PIL.Image.Image``.
        keep_jpeg: Encode an image read from a JPEG as JPEG (photos stay small).
    """
    buffer = io.BytesIO()
    if keep_jpeg and image.format == "JPEG" and image.mode in ("RGB", "L", "CMYK"):
        image.save(buffer, format="JPEG", quality=90)
    else:
        if image.mode not in ("RGB", "RGBA", "L", "LA", "P", "1", "I;16"):
            image = image.convert("RGBA" if "A" in image.mode else "RGB")
        image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def downscaled(data: bytes, max_edge: int = MAX_EDGE) -> tuple[bytes, tuple[int, int]] | None:
    """The image made to fit ``max_edge`` on its longest side, aspect kept, with Pillow.

    Args:
        data: PNG, JPEG, GIF or WebP bytes (or any format Pillow reads).
        max_edge: The longest edge allowed.

    Returns:
        The new bytes (PNG, or JPEG for a JPEG) and their size, or ``None`` if the image
        already fits.

    Raises:
        OSError: If Pillow cannot read the image (and ``ImportError`` without Pillow).
    """
    module = pillow()
    if module is None:
        raise ImportError("Pillow is not installed")
    with module.open(io.BytesIO(data)) as image:
        if max(image.size) <= max_edge:
            return None
        source_format = image.format
        image.load()
        image.thumbnail((max_edge, max_edge), module.Resampling.LANCZOS)
        image.format = source_format
        return encode(image), image.size


def thumbnail(data: bytes, max_edge: int = THUMBNAIL_EDGE) -> tuple[str, bytes] | None:
    """A small preview of an image, to keep in a saved notebook: its media type and bytes.

    Plots stay PNG (sharp lines, few colours); a preview that would still be large as PNG,
    a photo, is JPEG.

    Returns:
        ``None`` without Pillow, or if Pillow cannot read ``data``.
    """
    module = pillow()
    if module is None:
        return None
    try:
        with module.open(io.BytesIO(data)) as image:
            image.load()
            image.thumbnail((max_edge, max_edge), module.Resampling.LANCZOS)
            png = encode(image, keep_jpeg=False)
            if len(png) <= 24_000:
                return "image/png", png
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=80)
            return "image/jpeg", buffer.getvalue()
    except (OSError, ValueError, module.DecompressionBombError):
        return None


def figure_png(figure: Any) -> bytes:
    """A matplotlib figure drawn as PNG, at its own size and resolution (``figure.dpi``)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi)
    return buffer.getvalue()
