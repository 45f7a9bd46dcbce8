"""Start real station daemons (rotctld, rigctld, indiserver) on free loopback ports for driver tests."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: `apt-get install -y {package}` (this test must run, not skip)")
    return path


@contextlib.contextmanager
def daemon(argv: Sequence[str], port: int, timeout_s: float = 10.0) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` until it accepts TCP connections on `port`; stop it (by its pid) afterwards."""
    proc = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                pytest.fail(f"{argv[0]} exited with {proc.returncode}: {err[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    pass
                # Hamlib's daemons reset a connection opened just after another one closed (about 1 in 60): let the
                # probe's disconnect settle so the test's first connection is not the one that gets dropped.
                time.sleep(0.2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{argv[0]} did not listen on port {port} within {timeout_s} s")
                time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr:
            proc.stderr.close()
