"""`guardproxy redteam`: an offline attack suite and a benign suite sent to any OpenAI-compatible URL."""
