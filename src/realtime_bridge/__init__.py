"""Realtime Bridge: a relay between realtime voice/text clients and the OpenAI Realtime API."""

__version__ = "0.1.0"
