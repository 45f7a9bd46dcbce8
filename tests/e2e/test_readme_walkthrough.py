"""The README's "Running the parts separately" block, run as written: each line through bash, in order, from a
directory laid out like the repository (`.venv`, `examples/`), against the real scheduler, server and agent
processes it starts. A line ending in `&` keeps running, and the next line waits for it to be ready as a person
would (the server's "listening" line, the scheduler's port, the station ONLINE); every other line must exit 0.
The system must end up working: gs-athens ONLINE in `skymesh status` and a pass of the example satellite in
`skymesh jobs list` (both re-run until then, as a person would, within a deadline).

Uses the README's fixed ports (50051, 50052, metrics 9464): it fails at once, saying so, when one is taken.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PORTS = (50051, 50052, 9464)


def walkthrough(readme: str) -> list[str]:
    """The command lines of the first bash block under "## Running the parts separately" (continuations joined)."""
    section = readme.split("## Running the parts separately", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "no bash block under 'Running the parts separately'"
    lines = block.group(1).replace("\\\n", " ").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _subcommand(line: str) -> str:
    words = line.split()
    return words[1] if len(words) > 1 else ""


def _uncommented(line: str) -> str:
    """The line without its trailing "# ..." remark (no README command has a # inside an argument)."""
    return line.split(" #", 1)[0].rstrip()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _until(what: str, check: Callable[[], bool], timeout_s: float, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.3)


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    for port in PORTS:
        if _port_open(port):
            pytest.fail(f"port {port} is in use: the README walk-through needs 50051, 50052 and 9464 free")
    (tmp_path / ".venv").symlink_to(REPO_ROOT / ".venv")
    shutil.copytree(REPO_ROOT / "examples", tmp_path / "examples")  # ../../var in the agent's file lands here
    yield tmp_path


def test_readme_walkthrough_runs_as_written(workdir: Path) -> None:
    lines = walkthrough((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
    assert [_subcommand(line) for line in lines][:5] == ["scheduler", "server", "stations", "keys", "agent"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYMESH_")}  # a newcomer's shell
    env.update(PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1", HOME=str(workdir))
    logs = workdir / "logs"
    logs.mkdir()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    handles: list[Any] = []

    def run(line: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", line], cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout_s
        )

    def output_shows(line: str, *needles: str) -> Callable[[], bool]:
        def check() -> bool:
            done = run(line)
            assert done.returncode == 0, f"{line}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
            return all(n in done.stdout for n in needles)

        return check

    status = ".venv/bin/skymesh status"
    try:
        for line in lines:
            command = _subcommand(line)
            if line.endswith("&") or _uncommented(line).endswith("&"):
                text = _uncommented(line).removesuffix("&").strip()
                log = open(logs / f"{command}.log", "wb")  # noqa: SIM115 - the child writes it for its lifetime
                handles.append(log)
                procs[command] = subprocess.Popen(
                    ["bash", "-c", f"exec {text}"],
                    cwd=workdir,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
                if command == "scheduler":
                    _until("the scheduler's port", lambda: _port_open(50052), 60, procs)
                elif command == "server":
                    _until(
                        "the server's listening line",
                        lambda: b"listening on" in (logs / "server.log").read_bytes(),
                        60,
                        procs,
                    )
                    assert (workdir / "var" / "admin.token").exists()
                elif command == "agent":
                    _until("gs-athens ONLINE", output_shows(status, "gs-athens", "ONLINE"), 60, procs)
                continue
            done = run(line)
            assert done.returncode == 0, f"{line}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
            if command == "keys":
                assert (workdir / "var" / "gs-athens.key").read_text().startswith("smk_")
            if command == "jobs":
                # The plan follows the new target within seconds: run the same line again until it shows a pass.
                _until("a job for sat-90001 in `jobs list`", output_shows(line, "sat-90001", "gs-athens"), 90, procs)
            if command == "users":
                assert "token: smu_" in done.stdout
        # The end state: the station ONLINE and a pass of the example satellite planned for it.
        final = run(status)
        assert "gs-athens" in final.stdout and "ONLINE" in final.stdout, final.stdout
        jobs = run(".venv/bin/skymesh jobs list --station gs-athens --next 24h --json")
        assert '"target_id": "sat-90001"' in jobs.stdout, jobs.stdout + jobs.stderr
        assert all(proc.poll() is None for proc in procs.values()), {n: p.returncode for n, p in procs.items()}
    except AssertionError as exc:
        tails = "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:] for p in sorted(logs.glob("*.log")))
        raise AssertionError(f"{exc}\n{tails}") from None
    finally:
        for name in ("agent", "server", "scheduler"):
            proc = procs.get(name)
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for handle in handles:
            handle.close()
