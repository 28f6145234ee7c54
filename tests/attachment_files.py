"""Images, PDFs and text files for the attachment tests, made on the spot."""

from __future__ import annotations

import base64
import io
import os
from typing import Any

from PIL import Image

PDF = (
    b"%PDF-1.4\n"
    b"1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n"
    b"2 0 obj <</Type /Pages /Kids [3 0 R 4 0 R] /Count 2>> endobj\n"
    b"3 0 obj <</Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]>> endobj\n"
    b"4 0 obj <</Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]>> endobj\n"
    b"trailer <</Root 1 0 R>>\n%%EOF\n"
)
"""A two-page PDF, as small as one can be."""


def image_bytes(width: int, height: int, fmt: str = "PNG", *, noise: bool = False) -> bytes:
    """An image of this size in this format: a gradient, or random noise (which does not
    compress)."""
    if noise:
        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def decoded_image(block: dict[str, Any]) -> Image.Image:
    """The image a content block carries, decoded from its base64."""
    return Image.open(io.BytesIO(base64.b64decode(block["source"]["data"])))


def block_types(content: list[dict[str, Any]]) -> list[str]:
    """Each block's type, with its media type for images and documents."""
    return [
        f"{block['type']}:{block['source']['media_type']}" if "source" in block else block["type"]
        for block in content
    ]
