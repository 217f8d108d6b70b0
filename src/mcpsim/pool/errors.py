"""Why an instance could not be served. Each error carries the HTTP status and JSON-RPC code the front uses."""

from mcpsim.protocol.errors import BACKEND_START_FAILED, BACKEND_UNAVAILABLE, CAPACITY_EXHAUSTED


class PoolError(Exception):
    """An instance request the pool cannot satisfy; the message names the cause for the client."""

    http_status = 500
    rpc_code = BACKEND_START_FAILED


class CapacityError(PoolError):
    """`--max-instances` reached: retrying later can succeed."""

    http_status = 503
    rpc_code = CAPACITY_EXHAUSTED


class PortsExhausted(CapacityError):
    """Every port of `--port-range` is leased or taken by another program."""


class StartError(PoolError):
    """The server command failed to start or to become ready."""

    http_status = 502


class InstanceGone(PoolError):
    """The instance exists no more (ended, idled out, or never existed)."""

    http_status = 404
    rpc_code = BACKEND_UNAVAILABLE


class ShuttingDown(PoolError):
    http_status = 503
    rpc_code = CAPACITY_EXHAUSTED
