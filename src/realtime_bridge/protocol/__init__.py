"""Pure Realtime-protocol logic: event names, error events, translation, per-session rules."""
