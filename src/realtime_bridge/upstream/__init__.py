"""Upstreams: where a client session's events go (OpenAI, Azure, or the local imitation)."""
