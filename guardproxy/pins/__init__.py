"""Tool pinning: each caller's tool definitions are remembered, and a changed one is reported (a rug pull)."""
