"""`POST /v1/responses`: translate, run the gateway's chat flow, answer in the Responses API's shapes."""

from __future__ import annotations

from typing import Any

from guardproxy.errors import GuardproxyError
from guardproxy.proxy.exchange import TokenCharge
from guardproxy.proxy.gateway import Gateway, JSONResult, StreamResult
from guardproxy.proxy.responses.answer import from_chat
from guardproxy.proxy.responses.events import ResponsesStreamFormat
from guardproxy.proxy.responses.request import to_chat
from guardproxy.state.conversation import ConversationKey


async def handle_responses(
    gateway: Gateway,
    body: Any,
    *,
    request_id: str,
    client: str,
    charge: TokenCharge | None = None,
    profile: str | None = None,
    identity: str | None = None,
    conversation: ConversationKey | None = None,
) -> JSONResult | StreamResult:
    """Errors before the first byte are the gateway's OpenAI-shaped errors; a blocked stream ends in
    `response.incomplete` (reason `content_filter`), a blocked answer has that status and reason."""
    try:
        request = to_chat(body)
    except GuardproxyError as exc:
        await gateway.record_rejected(request_id, "responses", client, exc)
        raise
    model = str(request.chat["model"])
    result = await gateway.handle(
        "chat",
        request.chat,
        request_id=request_id,
        client=client,
        charge=charge,
        profile=profile,
        api="responses",
        identity=identity,
        conversation=conversation,
        wire=ResponsesStreamFormat(request_id, model, request.echo),
    )
    if isinstance(result, StreamResult):
        return result
    return JSONResult(result.status, from_chat(request_id, model, request.echo, result.body))
