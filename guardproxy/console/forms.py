"""Reading a console form post (urlencoded, or multipart for a file) and checking it came from the console."""

from __future__ import annotations

import email.policy
from collections.abc import Mapping
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl

from litestar import Request

from guardproxy.console.csrf import check_post
from guardproxy.proxy.request_body import read_body

AnyRequest = Request[Any, Any, Any]
MAX_FORM_BYTES = 512 * 1024  # a pasted policy draft, a CSV of labels
SIGN_IN_BYTES = 8192
FORM_READ_TIMEOUT_S = 30.0


async def read_form(request: AnyRequest, *, limit: int = MAX_FORM_BYTES) -> dict[str, str]:
    """The posted fields by name, with the proxy's body limit and deadline (413 / 408 beyond them)."""
    raw = await read_body(request, limit, FORM_READ_TIMEOUT_S, what="The form")
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        return multipart_fields(raw, content_type)
    return dict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))


def check_form(request: AnyRequest, expected: str, form: Mapping[str, str]) -> None:
    """CrossSiteRefused unless the form's `csrf` field is `expected` and it was posted from this host."""
    check_post(
        expected=expected,
        sent=form.get("csrf"),
        host=request.headers.get("host"),
        origin=request.headers.get("origin"),
        referer=request.headers.get("referer"),
    )


def multipart_fields(raw: bytes, content_type: str) -> dict[str, str]:
    """The text fields and files of a multipart/form-data body, by name, as UTF-8 text (the stdlib's MIME parser)."""
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1", errors="replace") + b"\r\n\r\n" + raw
    )
    fields: dict[str, str] = {}
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode("utf-8", errors="replace")
    return fields


def _check(request: AnyRequest, expected: str, sent: str | None) -> None:
    check_post(
        expected=expected,
        sent=sent,
        host=request.headers.get("host"),
        origin=request.headers.get("origin"),
        referer=request.headers.get("referer"),
    )
