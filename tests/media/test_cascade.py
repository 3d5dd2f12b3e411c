"""The verified cascade download: through the SSRF-safe fetcher, all or nothing, checksum pinned."""

from __future__ import annotations

import hashlib
import http.server
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog.settings import CASCADE_SHA256, DownloadSettings, FaceSettings
from media.cascade import download_verified, resolve_cascade
from media.errors import MediaError
from media.faces import FaceDetector

# The test server lives on 127.0.0.1, which the fetcher refuses unless told otherwise; no retries,
# so that the failure cases are quick.
LOCAL = DownloadSettings(allow_private_addresses=True, retries=0, connect_timeout=5, read_timeout=5)


# --- download -----------------------------------------------------------------------------------------


class _CascadeHandler(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        if self.path == "/cascade.xml":
            self._send(200, self.body)
        elif self.path == "/error":
            self._send(500, b"internal error")
        elif self.path == "/short":  # promises more than it sends, then hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body[: len(self.body) // 2])
        else:
            self._send(404, b"not found")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def cascade_server(cascade_path: Path) -> Iterator[str]:
    handler = type("Handler", (_CascadeHandler,), {"body": cascade_path.read_bytes()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_download_with_the_right_checksum_writes_the_file(
    cascade_server: str, tmp_path: Path, cascade_path: Path
) -> None:
    dest = tmp_path / "sub" / "cascade.xml"
    assert download_verified(f"{cascade_server}/cascade.xml", CASCADE_SHA256, dest, LOCAL) == dest
    assert dest.read_bytes() == cascade_path.read_bytes()
    assert _leftovers(dest.parent) == ["cascade.xml"]
    FaceDetector(dest, FaceSettings())  # and it loads


def test_download_with_a_wrong_checksum_leaves_nothing(cascade_server: str, tmp_path: Path) -> None:
    dest = tmp_path / "cascade.xml"
    with pytest.raises(MediaError, match="sha256"):
        download_verified(f"{cascade_server}/cascade.xml", "0" * 64, dest, LOCAL)
    assert _leftovers(tmp_path) == []


def test_failed_download_keeps_an_existing_file(cascade_server: str, tmp_path: Path) -> None:
    dest = tmp_path / "cascade.xml"
    dest.write_bytes(b"previous")
    with pytest.raises(MediaError):
        download_verified(f"{cascade_server}/cascade.xml", "0" * 64, dest, LOCAL)
    assert dest.read_bytes() == b"previous" and _leftovers(tmp_path) == ["cascade.xml"]


@pytest.mark.parametrize(("path", "message"), [("/error", "500"), ("/missing", "404"), ("/short", "failed")])
def test_server_errors_and_short_reads_are_clear_errors(
    cascade_server: str, tmp_path: Path, path: str, message: str
) -> None:
    with pytest.raises(MediaError, match=message):
        download_verified(f"{cascade_server}{path}", CASCADE_SHA256, tmp_path / "c.xml", LOCAL)
    assert _leftovers(tmp_path) == []


def test_unreachable_server_and_other_schemes_are_clear_errors(tmp_path: Path, cascade_path: Path) -> None:
    with pytest.raises(MediaError, match="scheme"):
        download_verified(cascade_path.as_uri(), CASCADE_SHA256, tmp_path / "c.xml", LOCAL)
    with pytest.raises(MediaError, match="failed"):
        download_verified("http://127.0.0.1:9/cascade.xml", CASCADE_SHA256, tmp_path / "c.xml", LOCAL)
    assert _leftovers(tmp_path) == []


# --- resolve_cascade -----------------------------------------------------------------------------------


def test_resolve_uses_the_configured_path(cascade_path: Path, tmp_path: Path) -> None:
    settings = FaceSettings(cascade_path=cascade_path, cascade_url="http://127.0.0.1:9/unused")
    assert resolve_cascade(settings, tmp_path, LOCAL) == cascade_path
    with pytest.raises(MediaError, match="does not exist"):
        resolve_cascade(FaceSettings(cascade_path=tmp_path / "nope.xml"), tmp_path, LOCAL)


def test_resolve_warns_about_a_configured_file_with_another_checksum(
    cascade_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    custom = tmp_path / "custom.xml"
    custom.write_bytes(cascade_path.read_bytes() + b"\n")
    with caplog.at_level(logging.WARNING, logger="media.cascade"):
        assert resolve_cascade(FaceSettings(cascade_path=custom), tmp_path, LOCAL) == custom
    assert "not the pinned" in caplog.text


def test_resolve_downloads_once_into_the_data_dir(
    cascade_server: str, tmp_path: Path, cascade_path: Path
) -> None:
    settings = FaceSettings(cascade_url=f"{cascade_server}/cascade.xml")
    path = resolve_cascade(settings, tmp_path / "data", LOCAL)
    assert path == tmp_path / "data" / "lbpcascade_animeface.xml"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == CASCADE_SHA256
    offline = FaceSettings(cascade_url="http://127.0.0.1:9/unreachable")
    assert resolve_cascade(offline, tmp_path / "data", LOCAL) == path  # verified copy: no network needed


def test_resolve_replaces_a_damaged_copy(cascade_server: str, tmp_path: Path, cascade_path: Path) -> None:
    (tmp_path / "lbpcascade_animeface.xml").write_bytes(b"damaged")
    path = resolve_cascade(FaceSettings(cascade_url=f"{cascade_server}/cascade.xml"), tmp_path, LOCAL)
    assert path.read_bytes() == cascade_path.read_bytes()


def test_an_unreachable_cascade_says_where_a_copy_can_go(tmp_path: Path) -> None:
    offline = FaceSettings(cascade_url="http://127.0.0.1:9/unreachable")
    with pytest.raises(MediaError) as caught:
        resolve_cascade(offline, tmp_path / "data", LOCAL)
    message = str(caught.value)
    assert message.startswith("Downloading http://127.0.0.1:9/unreachable failed")
    assert f"Put the cascade at {tmp_path / 'data' / 'lbpcascade_animeface.xml'}" in message
    assert "NAMAE_FACES__CASCADE_PATH" in message
    assert not (tmp_path / "data" / "lbpcascade_animeface.xml").exists()
