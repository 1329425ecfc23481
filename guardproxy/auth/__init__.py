"""API keys and roles: who may call the proxy, which models, and what else (feedback, metrics)."""
