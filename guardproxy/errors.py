"""Our own small error hierarchy. Foreign errors are mapped into it at the boundary.

Every error knows its HTTP status and OpenAI error `type`/`code`, so one handler renders all.
"""

from __future__ import annotations

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


class UpstreamStatus(GuardproxyError):
    """The upstream answered with a 4xx/5xx: passed on with its status and (if OpenAI-shaped) its body."""

    type = "upstream_error"
    code = "upstream_error"

    def __init__(self, status: int, body: dict[str, Any] | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    def to_body(self) -> dict[str, Any]:
        if self.body is not None and isinstance(self.body.get("error"), dict):
            return self.body
        return super().to_body()


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
