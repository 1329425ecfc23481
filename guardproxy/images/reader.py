"""The texts of a request's images: which images are read, and what an image that is not read becomes.

`data:` images are decoded and OCRed; remote ones only from `proxy.images.fetch_hosts` (then forwarded inline,
so the model sees the bytes that were read, not what the host serves later). Each text becomes a `Slot` of role
`image_text` for the input chain. Images not read (a host not allowed, a failed fetch or OCR, a text over
`proxy.max_text_chars`) stay `Unscanned`, with a kind that says why, for `proxy.unscanned` to decide.
Malformed data is a 400 and an image over the size limits a 413, before any OCR.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from dataclasses import dataclass

from guardproxy.core import TextRole
from guardproxy.errors import BodyTooLarge, InvalidRequest
from guardproxy.images.fetch import FetchRefused, FetchRules, fetch_image
from guardproxy.images.ocr import OcrFailed, OcrLimits, read_text
from guardproxy.policies.schema import ProxySettings
from guardproxy.proxy.walker import Slot, Unscanned

_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w.+-]+=[\w.+-]+)*(?P<b64>;base64)?,", re.ASCII)


@dataclass(frozen=True, slots=True)
class ImageTexts:
    slots: list[Slot]  # one per image read
    unscanned: list[Unscanned]  # everything else, images not read included


def _unchangeable(_: str) -> None:
    """An image's text cannot be written back: the gateway blocks an image a step would edit, before this."""


class ImageReader:
    """Built once per runtime from `proxy:` settings; its semaphore bounds Tesseract processes."""

    def __init__(self, proxy: ProxySettings) -> None:
        images = proxy.images
        self._max_bytes = images.max_bytes
        self._max_images = images.max_images
        self._max_chars = proxy.max_text_chars
        self._limits = OcrLimits(images.max_pixels, images.timeout_s, images.languages)
        self._fetch = FetchRules(
            tuple(h.lower().strip(".") for h in images.fetch_hosts),
            images.fetch_private,
            images.fetch_timeout_s,
            images.max_bytes,
        )
        self._slots = asyncio.Semaphore(images.concurrency)

    async def read(self, parts: list[Unscanned]) -> ImageTexts:
        images = [p for p in parts if p.image is not None]
        if len(images) > self._max_images:
            raise BodyTooLarge(
                f"This request has {len(images)} images; this proxy reads at most {self._max_images} per request "
                "(proxy.images.max_images)."
            )
        # Inline data is decoded (400/413 for bad input) before anything is fetched or OCRed.
        decoded = {id(p): self._decode(p) for p in images}
        results = await asyncio.gather(*(self._read_one(p, decoded[id(p)]) for p in images))
        slots = [r for r in results if isinstance(r, Slot)]
        unscanned = [p for p in parts if p.image is None] + [r for r in results if isinstance(r, Unscanned)]
        return ImageTexts(slots, unscanned)

    def _decode(self, part: Unscanned) -> bytes | None:
        assert part.image is not None
        url: str = part.image["url"]
        param = _param(part.path)
        m = _DATA_URL.match(url)
        if m is None:
            return None  # a remote URL
        if m.group("b64") is None:
            raise InvalidRequest(f"Invalid image at '{param}': a data URL must be base64-encoded.", param=param)
        payload = url[m.end() :]
        if len(payload) * 3 // 4 > self._max_bytes + 2:
            raise BodyTooLarge(
                f"The image at '{param}' has about {len(payload) * 3 // 4} bytes; this proxy reads images of at most "
                f"{self._max_bytes} bytes (proxy.images.max_bytes).",
                param=param,
            )
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest(
                f"Invalid image at '{param}': the data URL is not valid base64.", param=param
            ) from None

    async def _read_one(self, part: Unscanned, data: bytes | None) -> Slot | Unscanned:
        assert part.image is not None
        param = _param(part.path)
        try:
            if data is None:
                data, mime = await fetch_image(part.image["url"], self._fetch, param)
                part.image["url"] = f"data:{mime.split(';')[0]};base64,{base64.b64encode(data).decode()}"
            text = await read_text(data, self._limits, self._slots, param)
        except (FetchRefused, OcrFailed) as exc:
            return Unscanned(part.path, exc.kind, part.image)
        if len(text) > self._max_chars:
            return Unscanned(part.path, "image_text_too_long", part.image)
        return Slot(TextRole.IMAGE_TEXT, f"{part.path}.image_url", text, _unchangeable)


def _param(path: str) -> str:
    """`.messages[0].content[1]` -> `messages.0.content.1.image_url.url` (OpenAI's `param` style)."""
    return re.sub(r"\[(\d+)\]", r".\1", path).lstrip(".") + ".image_url.url"
