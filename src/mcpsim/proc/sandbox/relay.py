"""The relay of a sandboxed HTTP/SSE backend: mcpsim's Unix socket <-> the server's port on its own loopback.

A sandboxed instance has a network namespace of its own, so a server listening on `127.0.0.1:{port}` there is
out of mcpsim's reach. mcpsim therefore makes a Unix socket (bound, not yet listening) outside the sandbox and
passes it in as a file descriptor: no path to it exists inside, and nothing but mcpsim can connect to it. This
script is the command bwrap runs (after the drop to `nobody`); it forks:

- the parent installs the server's seccomp filter if one is given (in `strict`: inet stream sockets may be
  opened and listened on, `connect` and TCP fast-open refused, so the server can accept but reach nothing, not
  even its own loopback) and execs the server, so the server keeps the instance's pid and exit status;
- the child is the relay, outside that filter: it waits until the server accepts on its port, then calls
  `listen` on the Unix socket (so mcpsim's connect succeeds only once the server is there), and copies bytes
  between each accepted connection and a fresh loopback connection to the server. It cannot be traced by the
  server (not dumpable), and dies with it (parent-death signal; the sandbox's pid namespace ends with it too).

Standard library only, single-threaded (threads would count against `--limit-pids`), run as
`python -I -S relay.py LISTEN_FD PORT SECCOMP_FD|- -- ARGV...`. At most `MAX_CONNECTIONS` connections at once;
more wait in the listen backlog.
"""

import contextlib
import ctypes
import errno
import os
import selectors
import signal
import socket
import sys
import time

BUFFER = 1 << 16
"""Bytes read at once from either side; a side's reads pause while its last read is not written on."""
MAX_CONNECTIONS = 256
BACKLOG = 64
READY_POLL_MAX = 0.05
"""Longest pause between two probes of the server's port while it starts."""
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS = 1, 4, 22, 38
SECCOMP_MODE_FILTER = 2


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _prctl(libc: ctypes.CDLL, option: int, arg: int | ctypes.c_void_p) -> None:
    if libc.prctl(option, arg, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl({option}): {os.strerror(code)}")


def install_filter(libc: ctypes.CDLL, program: bytes) -> None:
    """Apply a classic-BPF seccomp program (8 bytes per instruction) to this process and what it execs."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _Fprog(len(program) // 8, ctypes.addressof(buffer))
    _prctl(libc, PR_SET_NO_NEW_PRIVS, 1)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"seccomp filter refused: {os.strerror(code)}")


class Side:
    """One socket of a relayed pair; `pending` holds what was read from it and not yet written to its peer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.peer: Side = self
        self.pending = b""
        self.eof = False
        self.closed = False
        self.registered = False

    def events(self) -> int:
        wanted = 0
        if not self.eof and not self.pending:
            wanted |= selectors.EVENT_READ
        if self.peer.pending:
            wanted |= selectors.EVENT_WRITE
        return wanted


class Relay:
    def __init__(self, listener: socket.socket, port: int, server_pid: int) -> None:
        self.listener = listener
        self.port = port
        self.server_pid = server_pid
        self.selector = selectors.DefaultSelector()
        self.pairs = 0

    def server_alive(self) -> bool:
        return os.getppid() == self.server_pid

    def wait_for_server(self) -> bool:
        """Probe the server's port until it accepts (True), or until the server is gone (False)."""
        delay = 0.002
        while self.server_alive():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                time.sleep(delay)
                delay = min(delay * 1.5, READY_POLL_MAX)
        return False

    def run(self) -> None:
        if not self.wait_for_server():
            return
        self.listener.listen(BACKLOG)
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        while self.server_alive():
            for key, mask in self.selector.select(timeout=1.0):
                if key.data is None:
                    self.accept()
                else:
                    self.handle(key.data, mask)

    def accept(self) -> None:
        try:
            outer, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        try:
            inner = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        except OSError:
            outer.close()  # the client sees its connection closed: the server stopped listening
            return
        a, b = Side(outer), Side(inner)
        a.peer, b.peer = b, a
        for side in (a, b):
            side.sock.setblocking(False)
            self.watch(side)
        self.pairs += 1
        if self.pairs >= MAX_CONNECTIONS:
            self.selector.unregister(self.listener)

    def handle(self, side: Side, mask: int) -> None:
        try:
            if mask & selectors.EVENT_WRITE and side.peer.pending:
                sent = side.sock.send(side.peer.pending)
                side.peer.pending = side.peer.pending[sent:]
                if not side.peer.pending and side.peer.eof:
                    side.sock.shutdown(socket.SHUT_WR)
            if mask & selectors.EVENT_READ and not side.eof and not side.pending:
                data = side.sock.recv(BUFFER)
                if data:
                    try:
                        sent = side.peer.sock.send(data)
                    except BlockingIOError:
                        sent = 0
                    side.pending = data[sent:]
                else:
                    side.eof = True
                    if not side.pending:
                        side.peer.sock.shutdown(socket.SHUT_WR)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.close_pair(side)
            return
        if side.eof and side.peer.eof and not side.pending and not side.peer.pending:
            self.close_pair(side)
            return
        for each in (side, side.peer):
            self.watch(each)

    def watch(self, side: Side) -> None:
        """Select on what `side` waits for now; nothing (half-closed and flushed) means not selected at all,
        since a socket at EOF stays readable and would spin the loop."""
        wanted = side.events()
        if wanted and side.registered:
            self.selector.modify(side.sock, wanted, side)
        elif wanted:
            self.selector.register(side.sock, wanted, side)
        elif side.registered:
            self.selector.unregister(side.sock)
        side.registered = bool(wanted)

    def close_pair(self, side: Side) -> None:
        for each in (side, side.peer):
            if not each.closed:
                each.closed = True
                if each.registered:
                    self.selector.unregister(each.sock)
                    each.registered = False
                each.sock.close()
        if self.pairs >= MAX_CONNECTIONS:
            self.selector.register(self.listener, selectors.EVENT_READ, None)
        self.pairs -= 1


def be_relay(libc: ctypes.CDLL, listen_fd: int, port: int, server_pid: int) -> None:
    _prctl(libc, PR_SET_PDEATHSIG, signal.SIGKILL)
    _prctl(libc, PR_SET_DUMPABLE, 0)  # the server (same uid) cannot ptrace it to borrow its connect()
    if os.getppid() != server_pid:
        return
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)  # the server's stdout pipe closes when the server does
    os.close(null)
    Relay(socket.socket(fileno=listen_fd), port, server_pid).run()


def main(argv: list[str]) -> None:
    if len(argv) < 5 or argv[3] != "--":
        sys.exit("usage: relay.py LISTEN_FD PORT SECCOMP_FD|- -- ARGV...")
    listen_fd, port = int(argv[0]), int(argv[1])
    seccomp_fd = None if argv[2] == "-" else int(argv[2])
    command = argv[4:]
    libc = ctypes.CDLL(None, use_errno=True)
    server_pid = os.getpid()
    if os.fork() == 0:
        if seccomp_fd is not None:
            os.close(seccomp_fd)
        try:
            be_relay(libc, listen_fd, port, server_pid)
        finally:
            os._exit(0)
    os.close(listen_fd)
    if seccomp_fd is not None:
        with os.fdopen(seccomp_fd, "rb") as source:
            program = source.read()
        install_filter(libc, program)
    for ignored_by_python in (signal.SIGPIPE, signal.SIGXFSZ):  # an exec keeps ignored signals ignored
        with contextlib.suppress(OSError):
            signal.signal(ignored_by_python, signal.SIG_DFL)
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        sys.exit(f"cannot start the server {command[0]!r}: {os.strerror(exc.errno or errno.ENOENT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
