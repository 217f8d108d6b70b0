"""`relay.py` on its own (no sandbox needed): it copies both ways under back-pressure, passes a half-close on,
accepts only once the server listens, and dies with the server."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import psutil

from mcpsim.proc import free_port
from mcpsim.proc.sandbox.runtime import RELAY

ECHO = """
import socket, sys, time
time.sleep(0.5)  # a server still importing: connects to the relay's socket must be refused meanwhile
with socket.create_server(("127.0.0.1", int(sys.argv[1]))) as listener:
    while True:
        conn, _ = listener.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)
"""


def test_the_relay_copies_both_ways_passes_a_half_close_on_and_dies_with_the_server(tmp_path):
    # the kernel's choice of a free port: a fixed one was found taken by another listener in CI, and the relay
    # then connected to that listener instead of the echo server
    port = free_port()
    path = str(tmp_path / "relay.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)  # not listening: the relay listens once the server does
    argv = [sys.executable, "-I", "-S", RELAY, str(listener.fileno()), str(port), "-", "--"]
    server = subprocess.Popen([*argv, sys.executable, "-c", ECHO, str(port)], pass_fds=[listener.fileno()])
    listener.close()
    try:
        deadline, refused = time.monotonic() + 30, 0
        while True:  # refused until the echo server listens and the relay with it
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                client.connect(path)
                break
            except OSError:
                refused += 1
                client.close()
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.02)
        assert refused > 0
        payload = os.urandom(3 << 20)  # more than every buffer on the way: both directions block at times

        def send() -> None:
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)  # the half-close must reach the server, whose EOF ends its echo

        sender = threading.Thread(target=send)
        sender.start()
        received = bytearray()
        client.settimeout(30)
        while chunk := client.recv(1 << 16):
            received += chunk
        sender.join()
        client.close()
        assert received == payload
        (relay,) = psutil.Process(server.pid).children()
        assert "relay.py" not in " ".join(psutil.Process(server.pid).cmdline())  # the server kept the pid
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    relay.wait(timeout=10)  # its parent-death signal
