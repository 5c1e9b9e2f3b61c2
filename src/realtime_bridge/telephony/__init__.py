"""Phone calls: a carrier-neutral call core and one small module per media-stream wire format."""
