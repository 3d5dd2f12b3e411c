"""A throwaway S3 server for the test suite and the store benchmark: Ceph's RADOS Gateway on
127.0.0.1 and a free port, over a one-monitor, one-OSD cluster kept in memory.

RGW is the S3 gateway production Ceph clusters run; Debian packages it (`radosgw`, `ceph-mon`,
`ceph-osd`; `.ci/run` installs them). It implements the conditional writes the model registry's
promotion relies on (`If-None-Match: *` and `If-Match: <etag>`) inside one RADOS operation, so
they hold under concurrent writers, which an emulator cannot promise.

`NAMAE_TEST_S3_URL=http://KEY:SECRET@HOST:PORT` points at an existing server (MinIO, say) instead.
When neither works, S3 tests skip with the reason, except under `CI=true`, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

START_TIMEOUT_S = 120.0
BINARIES = ("monmaptool", "ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph")
ACCESS_KEY = "NAMAETESTACCESSKEY01"
SECRET_KEY = "namae-test-secret-key-not-a-real-one"


class S3Unavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class S3Endpoint:
    endpoint: str  # http://127.0.0.1:PORT
    access_key: str
    secret_key: str
    region: str = "us-east-1"


def endpoint_from_environment() -> S3Endpoint | None:
    """`NAMAE_TEST_S3_URL`, when set: an S3 server someone else runs."""
    url = os.environ.get("NAMAE_TEST_S3_URL")
    if not url:
        return None
    parts = urlsplit(url)
    if not (parts.username and parts.password and parts.hostname):
        raise S3Unavailable("NAMAE_TEST_S3_URL must look like http://ACCESS_KEY:SECRET@HOST:PORT")
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    return S3Endpoint(f"{parts.scheme}://{netloc}", parts.username, parts.password)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _missing_binaries() -> list[str]:
    return [name for name in BINARIES if shutil.which(name) is None]


class ThrowawayGateway:
    """mon + osd (memstore) + radosgw, each a foreground child of this process."""

    def __init__(self) -> None:
        missing = _missing_binaries()
        if missing:
            raise S3Unavailable(
                f"Ceph's RADOS Gateway is not installed ({', '.join(missing)} missing): "
                "install Debian's radosgw, ceph-mon and ceph-osd packages"
            )
        self.root = Path(tempfile.mkdtemp(prefix="namae-s3-"))
        self.conf = self.root / "ceph.conf"
        self.mon_port = _free_port()
        self.port = _free_port()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.endpoint = S3Endpoint(f"http://127.0.0.1:{self.port}", ACCESS_KEY, SECRET_KEY)

    # -- configuration ---------------------------------------------------------------------

    def _write_conf(self, fsid: str) -> None:
        root = self.root
        lines = {
            "fsid": fsid,
            "mon host": f"v2:127.0.0.1:{self.mon_port}",
            "public addr": "127.0.0.1",
            # A throwaway cluster on loopback: no cephx, plain CRC framing (RGW would insist on
            # the secure mode, which needs cephx, unless told otherwise).
            "auth cluster required": "none",
            "auth service required": "none",
            "auth client required": "none",
            "ms mon client mode": "crc",
            "ms client mode": "crc",
            "ms mon cluster mode": "crc",
            "ms cluster mode": "crc",
            "ms bind ipv6": "false",
            "run dir": f"{root}/run",
            "admin socket": f"{root}/run/$name.asok",
            "log file": f"{root}/log/$name.log",
            "keyring": f"{root}/keyring",
            "mon data": f"{root}/mon/$name",
            "osd data": f"{root}/osd/$name",
            "mon data avail crit": "0",
            "mon data avail warn": "0",
            "mon allow pool size one": "true",
            "mon warn on pool no redundancy": "false",
            "mon max pg per osd": "1000",
            "osd pool default size": "1",
            "osd pool default min size": "1",
            "osd pool default pg num": "8",
            "osd pool default pgp num": "8",
            "osd pool default pg autoscale mode": "off",
            "osd crush chooseleaf type": "0",
            "osd objectstore": "memstore",
            "memstore device bytes": str(4 << 30),
            # Without tcp_nodelay a small reply can wait 40 ms for a delayed ACK (Nagle), which
            # production servers (MinIO, AWS) avoid; so does ours.
            "rgw frontends": f"beast endpoint=127.0.0.1:{self.port} tcp_nodelay=1",
            "rgw data": f"{root}/rgw",
            "rgw enable usage log": "false",
        }
        body = "".join(f"{key} = {value}\n" for key, value in lines.items())
        self.conf.write_text("[global]\n" + body)
        for sub in ("run", "log", "mon", "osd", "rgw"):
            (root / sub).mkdir()

    # -- processes -------------------------------------------------------------------------

    def _run(self, *args: str, timeout: float = 60) -> str:
        try:
            done = subprocess.run(
                [*args, "-c", str(self.conf)], capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise S3Unavailable(f"{args[0]} did not answer within {timeout:.0f} s") from exc
        if done.returncode != 0:
            raise S3Unavailable(f"{' '.join(args[:3])} failed: {done.stderr.strip()[-500:]}")
        return done.stdout

    def _daemon(self, *args: str) -> None:
        name = args[0]
        log = (self.root / "log" / f"{name}.out").open("ab")
        process = subprocess.Popen(
            [*args, "-c", str(self.conf), "-f"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self.processes.append(process)

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            for process in self.processes:
                if process.poll() is not None:
                    raise S3Unavailable(
                        f"{Path(process.args[0]).name} exited with {process.returncode} before {what}; "
                        f"logs in {self.root / 'log'}"
                    )
            if time.monotonic() > deadline:
                raise S3Unavailable(f"no {what} within {START_TIMEOUT_S:.0f} s; logs in {self.root / 'log'}")
            time.sleep(0.2)  # polling a daemon that reports readiness nowhere else

    def _osd_up(self) -> bool:
        dump = json.loads(self._run("ceph", "osd", "dump", "--format", "json", "--connect-timeout", "10"))
        return any(osd.get("up") for osd in dump.get("osds", []))

    def _gateway_answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint.endpoint, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> S3Endpoint:
        try:
            fsid = str(uuid.uuid4())
            self._write_conf(fsid)
            monmap = self.root / "monmap"
            subprocess.run(
                ["monmaptool", "--create", "--addv", "a", f"[v2:127.0.0.1:{self.mon_port}]",
                 "--fsid", fsid, str(monmap)],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
            self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(monmap))
            self._daemon("ceph-mon", "-i", "a")
            osd_uuid = str(uuid.uuid4())
            osd_id = self._run("ceph", "osd", "new", osd_uuid, "--connect-timeout", "30").strip()
            (self.root / "osd" / f"osd.{osd_id}").mkdir()
            self._run("ceph-osd", "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid)
            self._daemon("ceph-osd", "-i", osd_id)
            self._wait(self._osd_up, "OSD up")
            self._daemon("radosgw", "-n", "client.rgw")
            self._wait(self._gateway_answers, "answer from the gateway")
            self._run(
                "radosgw-admin", "user", "create", "--uid", "namae-test", "--display-name", "namae tests",
                "--access-key", ACCESS_KEY, "--secret", SECRET_KEY,
            )  # fmt: skip
        except BaseException:
            self.stop()
            raise
        return self.endpoint

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        shutil.rmtree(self.root, ignore_errors=True)


def make_bucket(endpoint: S3Endpoint, name: str) -> None:
    """Create a bucket (obstore, the product's client, has no bucket operations; minio-py is a dev
    dependency, also the baseline of bench/objectstore.py)."""
    from minio import Minio

    parts = urlsplit(endpoint.endpoint)
    client = Minio(
        parts.netloc,
        access_key=endpoint.access_key,
        secret_key=endpoint.secret_key,
        region=endpoint.region,
        secure=parts.scheme == "https",
    )
    client.make_bucket(name)


@contextmanager
def s3_server() -> Iterator[S3Endpoint]:
    """The server NAMAE_TEST_S3_URL names, or a throwaway RGW started here and stopped on exit
    (S3Unavailable when it cannot start)."""
    external = endpoint_from_environment()
    if external is not None:
        yield external
        return
    gateway = ThrowawayGateway()
    try:
        yield gateway.start()
    finally:
        gateway.stop()
