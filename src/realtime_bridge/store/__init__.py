"""Counters, registries and revocations that sessions share: in memory, or (later) Redis."""
