"""The I/O edge: listeners, the relay, the session registry and the HTTP API."""
