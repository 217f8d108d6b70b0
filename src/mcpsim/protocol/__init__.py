"""Bottom layer: JSON-RPC message helpers, stdio framing and the per-instance message multiplexer."""
