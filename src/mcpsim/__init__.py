"""mcpsim: isolated, seeded episodes against unmodified production MCP servers."""

__version__ = "0.1.0"
