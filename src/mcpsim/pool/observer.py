"""What the pool tells whoever watches it (the server's metrics): a narrow Protocol, so the pool never imports
the server layer that implements it."""

from typing import Protocol

from mcpsim.pool.instance import Instance
from mcpsim.protocol.channels import MuxObserver


class PoolObserver(Protocol):
    """Where metrics learn of instance starts, failures and ends (called on the event loop)."""

    mux_observer: MuxObserver | None

    def instance_ready(self, instance: Instance) -> None: ...

    def instance_failed(self, instance: Instance) -> None: ...

    def instance_ended(self, instance: Instance) -> None: ...

    def environment_built(self, kind: str, seconds: float) -> None: ...

    def environment_reused(self, kind: str) -> None: ...

    def environment_failed(self, kind: str) -> None: ...
