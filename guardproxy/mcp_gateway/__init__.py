"""The MCP gateway: `/mcp/<server>` proxies streamable-HTTP MCP servers through the policy's chains.

`tools/list` descriptions are checked as tool definitions and filtered by the allow/deny lists,
`tools/call` arguments pass the input chain before the server sees them, and results pass it
(role `tool`: indirect injection, PII) before the client does. Every failure is a JSON-RPC error.
"""
