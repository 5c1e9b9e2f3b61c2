"""Tests of the local upstream (offline Realtime API imitation)."""
