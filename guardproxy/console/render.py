"""HTML out: the Jinja2 environment (autoescaping every value: audit text is attacker-controlled) and the
headers every console response carries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from litestar import Response

from guardproxy.console.events import when

# No script may run and nothing may load from elsewhere: the pages need neither (they work without JavaScript).
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("guardproxy.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(pct=_pct, ms=_ms, ratio=_ratio, fmt_ts=when, link=_link)
    return env


class Pages:
    """Renders templates into responses. One per app."""

    def __init__(self, *, store_raw: bool) -> None:
        self._env = environment()
        self.store_raw = store_raw

    def render(self, template: str, status: int = 200, **context: Any) -> Response[str]:
        context.setdefault("session", None)
        context.setdefault("notice", None)
        context.setdefault("active", None)
        context.setdefault("title", template.removesuffix(".html").capitalize())
        context.setdefault("store_raw", self.store_raw)
        html = self._env.get_template(template).render(**context)
        return Response(html, status_code=status, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


def redirect(location: str) -> Response[str]:
    return Response("", status_code=303, headers={**SECURITY_HEADERS, "location": location})


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _link(params: Mapping[str, str], **extra: str) -> str:
    merged = {**params, **extra}
    return "?" + urlencode(merged) if merged else ""
