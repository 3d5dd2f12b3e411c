"""The processes of a benchmarked deployment and the store they share (`bench.scale`): `namae`
processes started and their CPU time read at the end, PostgreSQL's CPU time, a throwaway bucket on
the test suite's S3 server, the environment that points processes at it, and a model published
into it as a trainer's machine does."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.harness import ROOT
from catalog.settings_sections import StoreSettings
from models.registry import Registry


@dataclass
class Plant:
    """The processes of one deployment, or the workers; their CPU time is read at the end."""

    name: str
    processes: list[psutil.Popen] = field(default_factory=list)
    cpu: float = 0.0

    def start(self, args: list[str], env: dict[str, str], log: Path) -> None:
        """Run `namae ARGS`; `env` names its data directory."""
        with log.open("ab") as out:
            self.processes.append(
                psutil.Popen(
                    [sys.executable, "-m", "namae", *args],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self.processes:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def stop(self) -> None:
        self.cpu = self.cpu_seconds()
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def postgres_cpu(cluster: Any) -> float:
    if cluster is None:
        return 0.0
    pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
    postmaster = psutil.Process(pid)
    total = 0.0
    for process in [postmaster, *postmaster.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.NoSuchProcess:
            pass
    return total


def publish(registry_root: Path, registry: Registry) -> str:
    """The active version of the folder registry `registry_root`, registered and promoted in
    `registry` as a trainer's machine does (the version keeps its number)."""
    source = Registry(registry_root).require_active()[1]
    version = registry.register(source).version
    result = registry.promote(version, force=True)
    assert result.promoted, result.reason
    return version


@contextmanager
def throwaway_bucket() -> Iterator[StoreSettings]:
    """A fresh bucket on the test suite's S3 server (started here unless NAMAE_TEST_S3_URL names one)."""
    from tests.s3_server import make_bucket, s3_server

    with s3_server() as endpoint:
        make_bucket(endpoint, "namae-bench-scale")
        yield StoreSettings(
            url="s3://namae-bench-scale/deploy",
            endpoint=endpoint.endpoint,
            region=endpoint.region,
            access_key_id=endpoint.access_key,
            secret_access_key=endpoint.secret_key,
        )


def store_environment(store: StoreSettings) -> dict[str, str]:
    """NAMAE_STORE for the processes (secrets in clear, as a deployment's environment has them)."""
    if not store.url:
        return {}
    values = store.model_dump(mode="json")
    for key in ("access_key_id", "secret_access_key", "session_token"):
        secret = getattr(store, key)
        values[key] = secret.get_secret_value() if secret is not None else None
    return {"NAMAE_STORE": json.dumps(values)}
