"""The OpenAI-compatible HTTP proxy: routes, chain runner, streaming guard and audit sink."""
