"""`RedisVault`: the anonymize vault in Redis, so every replica sees a conversation's placeholders.

One hash per conversation, `<prefix>conv:<id>`, with `p:[LABEL_n]` -> original, `o:LABEL\\0original` ->
placeholder and `n:LABEL` -> the label's last number; history links are plain keys `<prefix>link:<digest>`
-> conversation id. Every key expires `state.conversation_ttl_s` after its conversation's last turn (Redis's
own expiry). Issuing runs as one Lua script, the atomic form of `MemoryScope.placeholder_for`'s rule. The
originals are personal data: Redis holds them (and only them, no other text) for the TTL, like the
in-process vault holds them in memory; protect it as you protect the audit database.

Scripts name their keys in ARGV, not KEYS (the hash's name comes from a link read in the script): one Redis
server (or a primary with replicas), not Redis Cluster.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from guardproxy.state.failure import StateStoreError
from guardproxy.state.vault import Placeholder, Sensitive

_OPEN = """
local conv = ARGV[1]
if ARGV[2] ~= '' then
  local linked = redis.call('GET', ARGV[3] .. 'link:' .. ARGV[2])
  if linked then conv = linked end
end
local key = ARGV[3] .. 'conv:' .. conv
redis.call('PEXPIRE', key, ARGV[4])
return {conv, redis.call('HGETALL', key)}
"""

_ISSUE = """
local key = ARGV[1]
local out = {}
for i = 3, #ARGV, 2 do
  local label, original = ARGV[i], ARGV[i + 1]
  local by_original = 'o:' .. label .. '\\0' .. original
  local placeholder = redis.call('HGET', key, by_original)
  if not placeholder then
    placeholder = '[' .. label .. '_' .. redis.call('HINCRBY', key, 'n:' .. label, 1) .. ']'
    redis.call('HSET', key, by_original, placeholder, 'p:' .. placeholder, original)
  end
  out[#out + 1] = placeholder
end
redis.call('PEXPIRE', key, ARGV[2])
return out
"""

_LABEL = re.compile(r"^\[([A-Z][A-Z0-9_]*?)_\d+\]$")


class RedisVault:
    def __init__(self, client: Redis, *, ttl_s: float, prefix: str = "guardproxy:") -> None:
        self._client = client
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._prefix = prefix
        self._open = client.register_script(_OPEN)
        self._issue = client.register_script(_ISSUE)

    async def open(self, conversation: str, link: str | None) -> tuple[str, list[Placeholder]]:
        try:
            found, flat = await self._open(args=[conversation, link or "", self._prefix, self._ttl_ms])
        except (RedisError, OSError) as exc:
            raise StateStoreError("opening a conversation") from exc
        held = []
        for field, value in zip(flat[::2], flat[1::2], strict=True):
            label = _LABEL.match(field[2:]) if field.startswith("p:") else None
            if label is not None:
                held.append(Placeholder(field[2:], label.group(1), value))
        return str(found), held

    async def issue(self, conversation: str, values: Sequence[Sensitive]) -> list[str]:
        args: list[str | int] = [self._prefix + "conv:" + conversation, self._ttl_ms]
        for v in values:
            args += [v.label, v.original]
        try:
            placeholders = await self._issue(args=args)
        except (RedisError, OSError) as exc:
            raise StateStoreError("issuing placeholders") from exc
        return [str(p) for p in placeholders]

    async def link(self, link: str, conversation: str) -> None:
        try:
            await self._client.set(self._prefix + "link:" + link, conversation, px=self._ttl_ms)
        except (RedisError, OSError) as exc:
            raise StateStoreError("linking the next turn") from exc

    async def aclose(self) -> None:
        """The client is shared with the rate limiter; `SharedState.aclose` closes it."""
