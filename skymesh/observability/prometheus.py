"""Run a real Prometheus (the Debian `prometheus` binary) against SkyMesh processes, with SkyMesh's rules loaded.

Used by `skymesh demo --observe` (and so `make observe`) and by the tests that prove the alert rules on live
processes. `scrape_config` writes the configuration an SRE would start from: one job per process kind
(`skymesh-server`, `skymesh-scheduler`, `skymesh-agent`, the names the rules expect), scraping `/metrics`.

Imports only the standard library, PyYAML and `skymesh.observability.rules`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from skymesh.observability.rules import render

__all__ = ["Prometheus", "find_prometheus", "scrape_config", "start_prometheus"]


def find_prometheus() -> str:
    path = shutil.which("prometheus")
    if path is None:
        raise FileNotFoundError("no 'prometheus' binary on PATH: apt-get install prometheus (Debian 12: 2.42)")
    return path


def scrape_config(
    targets: Mapping[str, Sequence[str]],
    rules_files: Sequence[Path],
    *,
    scrape_interval: str = "5s",
    evaluation_interval: str = "5s",
) -> dict[str, Any]:
    """A prometheus.yml: `targets` maps a job (`skymesh-server`, ...) to its `host:port` metrics endpoints."""
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": [str(p) for p in rules_files],
        "scrape_configs": [
            {"job_name": job, "metrics_path": "/metrics", "static_configs": [{"targets": list(addrs)}]}
            for job, addrs in targets.items()
        ],
    }


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    config_path: Path

    def api(self, path: str, **params: str) -> Any:
        """GET `/api/v1/<path>` and return its `data` (raises on an error status)."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{'?' + query if query else ''}", timeout=5) as reply:
            body = json.loads(reply.read())
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus {path}: {body}")
        return body["data"]

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_prometheus(
    workdir: Path,
    targets: Mapping[str, Sequence[str]],
    *,
    port: int,
    fast_rules: bool = False,
    scrape_interval: str = "5s",
    evaluation_interval: str = "5s",
    timeout_s: float = 30.0,
) -> Prometheus:
    """Write the rules and the configuration under `workdir`, start Prometheus on 127.0.0.1:`port`, wait until ready.

    `fast_rules`: every alert's `for:` is 0s (tests; a demo shows alerts as they would page).
    """
    binary = find_prometheus()
    workdir.mkdir(parents=True, exist_ok=True)
    rules = workdir / "skymesh.rules.yml"
    rules.write_text(render(fast=fast_rules))
    config = workdir / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            scrape_config(targets, [rules], scrape_interval=scrape_interval, evaluation_interval=evaluation_interval),
            sort_keys=False,
        )
    )
    check = subprocess.run(
        [shutil.which("promtool") or "promtool", "check", "config", str(config)], capture_output=True, text=True
    )
    if check.returncode != 0:
        raise RuntimeError(f"promtool check config failed:\n{check.stdout}{check.stderr}")
    log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - the child writes it for its lifetime
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ},
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode}; see {workdir / 'prometheus.log'}")
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
            urllib.request.urlopen(f"{url}/-/ready", timeout=2) as reply,
        ):
            if reply.status == 200:
                return Prometheus(url, process, config)
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"prometheus not ready at {url} after {timeout_s:.0f} s")
        time.sleep(0.2)
