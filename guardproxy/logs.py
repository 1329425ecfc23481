"""Server log configuration: tracebacks without locals, so no request ever reaches a log line.

structlog's default console renderer formats exceptions with rich and `show_locals=True`: one
request nested 2,000 `[` deep logged a ~49 kB traceback whose frames' locals held the client's
bearer token 11 times and the raw body (issue 10, item 7). Here tracebacks are plain text —
file, line, source line, exception message — and nothing else of the frames.
"""

from __future__ import annotations

import sys

import structlog


def configure_logging() -> None:
    """Install the proxy's log pipeline (process-wide: structlog's configuration is global)."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.StackInfoRenderer(),
            structlog.dev.set_exc_info,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
            ),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def ensure_logging() -> None:
    """`configure_logging()` unless the embedding program (or a test's `capture_logs`) configured structlog."""
    if not structlog.is_configured():
        configure_logging()
