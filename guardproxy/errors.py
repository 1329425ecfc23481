"""Our own small error hierarchy. Foreign errors are mapped into it at the boundary.

Every error knows its HTTP status and OpenAI error `type`/`code`, so one handler renders all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class GuardproxyError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.extra = extra or {}

    def to_body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code, "param": self.param}
        err.update(self.extra)
        return {"error": err}

    def response_headers(self) -> dict[str, str]:
        """Headers the error response carries besides the request id (e.g. `Retry-After`)."""
        return {}


class InvalidRequest(GuardproxyError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class BodyTooLarge(GuardproxyError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RequestReadTimeout(GuardproxyError):
    """The client did not send its request headers or body in time (a slow or stalled client)."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class ModelNotFound(GuardproxyError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class Blocked(GuardproxyError):
    """An input step blocked the request. Carries which step and labels fired, never the text."""

    status = 400
    type = "invalid_request_error"
    code = "content_filter"

    def __init__(
        self, message: str, *, code: str = "content_filter", step: str, detector: str, labels: tuple[str, ...]
    ) -> None:
        super().__init__(message, extra={"guardproxy": {"step": step, "detector": detector, "labels": list(labels)}})
        self.code = code
        self.step = step
        self.detector = detector
        self.labels = labels


class UpstreamUnavailable(GuardproxyError):
    status = 502
    type = "upstream_error"
    code = "upstream_unavailable"


class UpstreamTimeout(GuardproxyError):
    status = 504
    type = "upstream_error"
    code = "upstream_timeout"


@dataclass(frozen=True, slots=True)
class UpstreamErrorFields:
    """The `message`/`type`/`code`/`param` of an upstream's error object. An upstream can be hostile (or
    echo the prompt), so none of them reaches the client or a log before the output chain checked it."""

    message: str | None = None
    type: str | None = None
    code: str | int | None = None
    param: str | None = None

    @classmethod
    def of(cls, error: object) -> UpstreamErrorFields | None:
        """From the `error` object of an OpenAI-shaped body; None when there is none. Other keys are dropped."""
        if not isinstance(error, dict):
            return None

        def text(key: str) -> str | None:
            value = error.get(key)
            return value if isinstance(value, str) and value else None

        code = error.get("code")
        return cls(
            text("message"), text("type"), code if isinstance(code, int | str) and code != "" else None, text("param")
        )


class UpstreamStatus(GuardproxyError):
    """The upstream answered with a 4xx/5xx (or an error event mid-stream): passed on with its status.

    `message` is our own description (safe for logs and the audit store). What the upstream said is kept
    in `upstream` and reaches the client only as `forwarded`, which the gateway sets after the output chain
    checked it (`proxy/upstream_errors.py`); until then the client sees our message.
    """

    type = "upstream_error"
    code = "upstream_error"

    def __init__(self, status: int, upstream: UpstreamErrorFields | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.upstream = upstream
        self.forwarded: UpstreamErrorFields | None = None

    def to_body(self) -> dict[str, Any]:
        shown = self.forwarded
        if shown is None:
            return super().to_body()
        err: dict[str, Any] = {
            "message": shown.message or self.message,
            "type": shown.type or self.type,
            "code": shown.code if shown.code is not None else self.code,
            "param": shown.param,
        }
        return {"error": err}


class StreamBroken(GuardproxyError):
    """The upstream stream ended abnormally after the first byte."""

    status = 502
    type = "upstream_error"
    code = "upstream_stream_broken"


class DetectorFailed(GuardproxyError):
    status = 500
    type = "server_error"
    code = "detector_failed"


class PolicyInvalid(GuardproxyError):
    """A policy file failed to load. `str()` names the file, the line, the field and what is allowed."""

    status = 500
    type = "server_error"
    code = "policy_invalid"


class AuditUnavailable(GuardproxyError):
    """The audit queue is full and the policy says to fail rather than wait."""

    status = 503
    type = "server_error"
    code = "audit_unavailable"


class StateUnavailable(GuardproxyError):
    """The shared state store (Redis, `state.url`) did not answer and `state.on_error` is `fail_closed`: a
    request that needs rate limits or anonymize placeholders is refused rather than served unchecked."""

    status = 503
    type = "server_error"
    code = "state_unavailable"


class InvalidApiKey(GuardproxyError):
    """Missing, unknown, revoked or expired API key (when `auth.mode: keys`)."""

    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(GuardproxyError):
    """A valid key whose role does not allow this route (e.g. a client key posting feedback)."""

    status = 403
    type = "invalid_request_error"
    code = "permission_denied"


class ProfileNotFound(GuardproxyError):
    """A valid key names a policy profile the current policy lacks (a reload removed or renamed it).

    Fails closed with 403 rather than falling back to the default profile, whose rules may be looser;
    403, not 5xx, so that SDKs do not retry a request that cannot succeed until the operator acts.
    """

    status = 403
    type = "invalid_request_error"
    code = "profile_not_found"


class ModelNotAllowed(GuardproxyError):
    """A valid key asked for a model outside its `models` list."""

    status = 403
    type = "invalid_request_error"
    code = "model_not_allowed"


class RateLimitExceeded(GuardproxyError):
    """A key is over its requests or tokens per minute (OpenAI's 429 shape, with `Retry-After`)."""

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.headers = headers

    def response_headers(self) -> dict[str, str]:
        return {**self.headers, "retry-after": str(max(1, math.ceil(self.retry_after_s)))}


class BudgetExhausted(GuardproxyError):
    """A key has used its token budget: OpenAI's `insufficient_quota` 429. `x-should-retry: false` stops the
    openai SDKs from retrying: a lifetime budget never comes back (no `Retry-After`); a budget per day, week
    or month comes back at the next period, in `retry_after_s` (`Retry-After`), hours rather than seconds."""

    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"

    def __init__(self, message: str, *, headers: dict[str, str], retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.headers = headers
        self.retry_after_s = retry_after_s

    def response_headers(self) -> dict[str, str]:
        out = {**self.headers, "x-should-retry": "false"}
        if self.retry_after_s is not None:
            out["retry-after"] = str(max(1, math.ceil(self.retry_after_s)))
        return out
