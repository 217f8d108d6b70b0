"""Who is calling, and which instances they may see and drive (the access model of docs/operations.md).

A server without a token (loopback only) has one principal, `LOCAL`, who sees everything. A token makes its
holder a principal: one token (`--auth-token`, `MCPSIM_AUTH_TOKEN`, or a one-line `--auth-token-file`) is
one principal, the admin, so everything stays visible to it. A token file with several lines names several
principals; the first is the admin. Every instance records the principal that started it (`Instance.owner`).
Listings (`/api/instances`, `/api/overview`) show a principal only its own instances, and any address of an
instance (its id, its `/envs/{id}/mcp` handle, its `/mcp` session id) answers another principal exactly as if
it did not exist (404), because session ids and instance ids are capabilities: who knows one can drive or end
the episode. The admin sees and may end everything. Instances nobody has claimed yet (warm ones) belong to
no one, so only the admin sees them.
"""

import hmac
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.types import Scope

from mcpsim.errors import InstanceGone, TokenFileError
from mcpsim.wire import TOKEN_VARIABLE

if TYPE_CHECKING:  # only for hints: `mcpsim view` uses the guard without any pool
    from mcpsim.pool import Instance, InstancePool

SCOPE_KEY = "mcpsim.principal"
"""Where `AccessGuard` puts the caller's `Principal` in the ASGI scope of every request it lets through."""
NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
TOKEN_TEXT = re.compile(r"[!-~]+")
"""Printable ASCII without spaces: what an `Authorization: Bearer` header, a query string and a cookie carry."""


@dataclass(frozen=True)
class Principal:
    name: str
    admin: bool = False

    def may_use(self, instance: "Instance") -> bool:
        """Whether this caller may see, drive or end `instance`: its creator, or the admin."""
        return self.admin or instance.owner == self.name


LOCAL = Principal("local", admin=True)
"""The one principal of a server without a token: only this machine can connect, and it sees everything."""
NOBODY = Principal("")
"""A request no guard identified (`/health`, open to all): it owns nothing, so it may see and address nothing."""


class Credentials:
    """The tokens a server accepts, each standing for one principal."""

    def __init__(self, principals: Sequence[tuple[Principal, str]]) -> None:
        if not principals:
            raise TokenFileError("no token given")
        self._principals = list(principals)

    @classmethod
    def single(cls, token: str) -> "Credentials":
        """One token: its holder is the admin, as before several principals existed."""
        return cls([(Principal("admin", admin=True), token)])

    @property
    def principals(self) -> list[Principal]:
        return [principal for principal, _ in self._principals]

    def identify(self, candidate: str | None) -> Principal | None:
        """The principal whose token `candidate` is, or None. Compares with every token in constant time."""
        if candidate is None:
            return None
        found = None
        for principal, token in self._principals:
            if hmac.compare_digest(candidate.encode(), token.encode()):
                found = principal
        return found

    def token_of(self, principal: Principal) -> str:
        return next(token for known, token in self._principals if known == principal)


def load_token_file(path: Path) -> tuple[Credentials, list[str]]:
    """Parse an `--auth-token-file`: (credentials, warnings). Raises `TokenFileError` naming the problem.

    One token per line, optionally `NAME:TOKEN` (a line with a colon is always read so; the token is what follows
    the first colon); a bare token is named `token<LINE>`. The first token is the admin. Blank lines and lines
    starting with `#` are ignored.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")  # an editor's byte-order mark is no part of a token
        mode = path.stat().st_mode
    except OSError as exc:
        raise TokenFileError(f"cannot read --auth-token-file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TokenFileError(f"--auth-token-file {path} is not UTF-8 text") from None
    principals: list[tuple[Principal, str]] = []
    names: set[str] = set()
    tokens: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, token = line.partition(":")
        if not colon:
            name, token = f"token{number}", line
        where = f"--auth-token-file {path}, line {number}"
        if not NAME.fullmatch(name):
            raise TokenFileError(f"{where}: the name before ':' must be 1-64 of A-Z a-z 0-9 _ . @ -")
        if not TOKEN_TEXT.fullmatch(token):
            raise TokenFileError(f"{where}: a token must be printable ASCII without spaces (and not empty)")
        if name in names:
            raise TokenFileError(f"{where}: the name {name!r} is given twice")
        if token in tokens:
            raise TokenFileError(f"{where}: this token is given twice (each principal needs its own)")
        names.add(name)
        tokens.add(token)
        principals.append((Principal(name, admin=not principals), token))
    if not principals:
        raise TokenFileError(f"--auth-token-file {path} holds no token (one per line, optionally NAME:TOKEN)")
    warnings = []
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.append(f"--auth-token-file {path} is readable by other users (mode {mode & 0o777:o}); chmod 600 it")
    return Credentials(principals), warnings


def credentials_from(
    token: str | None, token_file: Path | None, environ: Mapping[str, str]
) -> tuple[Credentials | None, list[str]]:
    """The server's tokens from `--auth-token-file`, else `--auth-token`, else `MCPSIM_AUTH_TOKEN` (a flag wins
    over the variable): (credentials or None, warnings to log). A token on the command line is shown by `ps` to
    every user of the machine, so it is accepted (for compatibility) with a warning."""
    if token_file is not None:
        return load_token_file(token_file)
    if token:
        warning = (
            "--auth-token puts the token on the command line, where ps shows it to every user of this machine; "
            f"use --auth-token-file FILE or {TOKEN_VARIABLE} instead"
        )
        return Credentials.single(token), [warning]
    from_environment = environ.get(TOKEN_VARIABLE)
    return (Credentials.single(from_environment) if from_environment else None), []


def principal_of(scope: Scope) -> Principal:
    """The caller `AccessGuard` identified (`LOCAL` on a server without a token); `NOBODY` if none did."""
    return scope.get(SCOPE_KEY, NOBODY)


def visible(principal: Principal, instances: Iterable["Instance"]) -> list["Instance"]:
    return [instance for instance in instances if principal.may_use(instance)]


def owned(pool: "InstancePool", instance_id: str, principal: Principal) -> "Instance":
    """The instance `instance_id` if `principal` may use it; else `InstanceGone`, worded as for a missing one, so
    another principal's ids cannot be probed."""
    instance = pool.instances.get(instance_id)
    if instance is None or not principal.may_use(instance):
        raise InstanceGone(f"no instance {instance_id!r}: it ended or never existed")
    return instance
