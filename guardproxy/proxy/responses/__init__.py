"""The Responses API (`POST /v1/responses`), served by translation to chat completions (see `request.py`)."""

from guardproxy.proxy.responses.api import handle_responses

__all__ = ["handle_responses"]
