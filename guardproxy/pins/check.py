"""The tool-pinning check: hashes each tool a chat request declares and asks the store which ones changed.

A tool server (an MCP server, a plugin) that passed review once can later change a tool's description to
carry instructions for the model: the "rug pull". The first definition a caller sends for a tool name is
pinned; a later one that differs reports the label `tool_changed:<name>`. `tool_pinning.mode` decides (flag or
block). The caller is the API key's name with `auth.mode: keys`, else the client label (address and a hash of
the credential).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from guardproxy.core import JSON, Context, Detection
from guardproxy.pins.store import PinStore


def tool_hashes(body: JSON) -> dict[str, str]:
    """Tool name -> sha256 of its whole definition (description, parameters...), for `tools` and `functions`."""
    out: dict[str, str] = {}
    for key in ("tools", "functions"):
        items = body.get(key)
        for item in items if isinstance(items, list) else ():
            name = _name(item)
            if name is not None:
                canonical = json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
                out[f"{key}:{name}"] = hashlib.sha256(canonical.encode()).hexdigest()
    return out


def _name(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    inner = item.get(item.get("type")) if isinstance(item.get("type"), str) else None
    name = (inner if isinstance(inner, dict) else item).get("name")
    return name if isinstance(name, str) else None


class ToolPinCheck:
    """Reads the tools from `ctx.request` and the caller from `ctx.client`; reports tools whose definition changed."""

    name = "tool_pinning"
    scope: Literal["text", "request"] = "request"

    def __init__(self, store: PinStore) -> None:
        self._store = store

    async def detect(self, text: str, ctx: Context) -> Detection:
        tools = tool_hashes(ctx.request)
        if not tools:
            return Detection(score=0.0)
        changed = await self._store.compare_and_pin(ctx.client, tools)
        if not changed:
            return Detection(score=0.0)
        labels = tuple(f"tool_changed:{name.split(':', 1)[1][:64]}" for name in changed)
        return Detection(score=1.0, labels=labels, explanation="a tool's definition differs from its pinned one")

    async def aclose(self) -> None:
        self._store.close()
