"""Images with text for the OCR tests, drawn with Pillow (Tesseract reads them: tests/test_image_ocr.py)."""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageDraw, ImageFont


def text_image(text: str, size: tuple[int, int] = (1280, 200), font_size: int = 36, fmt: str = "PNG") -> bytes:
    """Black text on white in Pillow's default font at a size OCR reads reliably."""
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).text((20, 40), text, fill="black", font=ImageFont.load_default(size=font_size))
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


def screenshot(lines: list[str], size: tuple[int, int] = (1280, 800)) -> bytes:
    """A screenshot-sized page of text lines (the OCR benchmark's input)."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=22)
    for i, line in enumerate(lines):
        draw.text((30, 30 + i * 34), line, fill="black", font=font)
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"
