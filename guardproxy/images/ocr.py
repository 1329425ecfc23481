"""Tesseract OCR of one image: checked and decoded with Pillow in a thread, read by the `tesseract` binary.

The image is opened lazily first, so its size is refused (413) before any pixel is decoded; then decoded to
grayscale and handed to `tesseract stdin stdout` as PGM (no temporary file). The process is killed when it
runs past the time limit. Each Tesseract runs single-threaded (`OMP_THREAD_LIMIT=1`) and a semaphore bounds
how many run at once, so OCR cannot take over the cores the detectors need.
"""

from __future__ import annotations

import asyncio
import io
import os
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from guardproxy.errors import BodyTooLarge, InvalidRequest

# What OpenAI's vision models accept.
FORMATS = frozenset({"PNG", "JPEG", "GIF", "WEBP"})


class OcrFailed(Exception):
    """Tesseract did not produce text (crashed, or ran out of time): the image stays unscanned."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind  # the unscanned kind: image_ocr_timeout | image_ocr_failed


@dataclass(frozen=True, slots=True)
class OcrLimits:
    max_pixels: int
    timeout_s: float
    languages: str


def grayscale_pnm(data: bytes, max_pixels: int, param: str) -> bytes:
    """The image as 8-bit PGM. Raises 400 for data that is not an image, 413 for too many pixels."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in FORMATS:
                raise InvalidRequest(
                    f"Invalid image at '{param}': {img.format} is not one of PNG, JPEG, GIF, WebP.", param=param
                )
            width, height = img.size
            if width * height > max_pixels:
                raise BodyTooLarge(
                    f"The image at '{param}' is {width}x{height} pixels; this proxy reads at most {max_pixels} "
                    "pixels per image (proxy.images.max_pixels).",
                    param=param,
                )
            out = io.BytesIO()
            img.convert("L").save(out, "PPM")
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidRequest(
            f"Invalid image at '{param}': the data is not a readable PNG, JPEG, GIF or WebP image ({exc}).",
            param=param,
        ) from None


async def run_tesseract(pnm: bytes, limits: OcrLimits) -> str:
    """The text Tesseract reads in a PGM image."""
    proc = await asyncio.create_subprocess_exec(
        "tesseract", "stdin", "stdout", "-l", limits.languages, "--psm", "3",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "OMP_THREAD_LIMIT": "1"},
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(pnm), limits.timeout_s)
    except TimeoutError:
        raise OcrFailed("image_ocr_timeout", f"tesseract ran over {limits.timeout_s} s") from None
    finally:
        if proc.returncode is None:  # timed out or cancelled (the client left): never leave it running
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise OcrFailed(
            "image_ocr_failed", f"tesseract exited {proc.returncode}: {err.decode(errors='replace')[-200:]}"
        )
    return out.decode("utf-8", errors="replace").strip()


async def read_text(data: bytes, limits: OcrLimits, slots: asyncio.Semaphore, param: str) -> str:
    """Decode (in a thread) and OCR one image, waiting for a free Tesseract slot."""
    async with slots:
        pnm = await asyncio.to_thread(grayscale_pnm, data, limits.max_pixels, param)
        return await run_tesseract(pnm, limits)
