"""The managed simulation server: HTTP front, per-session proxy to pool instances, operations endpoints."""
