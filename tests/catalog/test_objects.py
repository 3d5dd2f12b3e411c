"""The object-store contract, on both backends: whole-object puts, the compare-and-swap, listing,
deletion, bad keys. Every test here runs against a folder and against a real S3 server."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from catalog.object_backends import open_objects
from catalog.objects import ObjectMissing, StoreError
from catalog.settings import Settings
from catalog.settings_sections import StoreSettings


@pytest.fixture
def objects(settings: Settings, store_settings: StoreSettings):
    return open_objects(settings.model_copy(update={"store": store_settings}), "things")


def test_put_get_list_delete(objects) -> None:
    assert objects.list() == []
    objects.put("a/b/one", b"1")
    objects.put("a/two", b"22")
    objects.put("a/two", b"222")  # a put replaces the object whole
    assert objects.get("a/two") == b"222"
    assert objects.exists("a/b/one") and not objects.exists("a/b/three")
    assert [(i.key, i.size) for i in objects.list()] == [("a/b/one", 1), ("a/two", 3)]
    assert [i.key for i in objects.list("a/b/")] == ["a/b/one"]
    objects.delete("a/two")
    objects.delete("a/two")  # deleting what is gone is no error
    with pytest.raises(ObjectMissing, match="a/two is not in"):
        objects.get("a/two")
    assert objects.get_versioned("a/two") is None and objects.stamp("a/two") is None


def test_files_go_up_and_come_down(objects, tmp_path: Path) -> None:
    source = tmp_path / "model.onnx"
    source.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    objects.put_file("v/model.onnx", source)
    copy = tmp_path / "copy" / "model.onnx"
    objects.download("v/model.onnx", copy)
    assert copy.read_bytes() == source.read_bytes()
    with pytest.raises(ObjectMissing):
        objects.download("v/absent", tmp_path / "absent")
    assert not (tmp_path / "absent").exists() and sorted(p.name for p in (tmp_path / "copy").iterdir()) == [
        "model.onnx"
    ]


def test_delete_prefix_removes_exactly_that_prefix(objects) -> None:
    for key in ("versions/v1/a", "versions/v1/b", "versions/v10/a", "versions/v2/a"):
        objects.put(key, b"x")
    objects.delete_prefix("versions/v1/")
    assert [i.key for i in objects.list()] == ["versions/v10/a", "versions/v2/a"]
    objects.delete_prefix("versions/v9/")  # nothing there: no error


def test_put_if_is_a_compare_and_swap(objects) -> None:
    assert objects.put_if("ACTIVE", b"first", expected=None)
    assert not objects.put_if("ACTIVE", b"again", expected=None), "create-only must refuse an existing key"
    current = objects.get_versioned("ACTIVE")
    assert current is not None and current.data == b"first"
    stamp = objects.stamp("ACTIVE")
    assert objects.put_if("ACTIVE", b"second", expected=current.tag)
    assert not objects.put_if("ACTIVE", b"stale", expected=current.tag), "a stale tag must be refused"
    assert objects.get("ACTIVE") == b"second"
    assert objects.stamp("ACTIVE") != stamp


def test_concurrent_compare_and_swap_loses_no_update(objects) -> None:
    """Threads increment one counter by read + put_if; every increment lands exactly once."""
    objects.put("counter", b"0")
    threads, increments = 4, 15
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(increments):
                while True:
                    current = objects.get_versioned("counter")
                    if objects.put_if("counter", str(int(current.data) + 1).encode(), expected=current.tag):
                        break
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=bump) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not errors, errors
    assert int(objects.get("counter")) == threads * increments


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a"])
def test_keys_cannot_leave_the_store(objects, key: str) -> None:
    with pytest.raises(StoreError, match="not a valid object key"):
        objects.put(key, b"x")
    with pytest.raises(StoreError, match="not a valid object key"):
        objects.get(key)


def test_bad_store_url_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="s3://bucket"):
        StoreSettings(url="http://bucket/prefix")


@pytest.mark.s3
def test_wrong_credentials_are_a_clear_error(settings: Settings, s3_store: StoreSettings) -> None:
    from pydantic import SecretStr

    wrong = s3_store.model_copy(update={"secret_access_key": SecretStr("not-the-secret")})
    objects = open_objects(settings.model_copy(update={"store": wrong}), "things")
    with pytest.raises(StoreError, match=r"writing x in s3://namae-\w+/deploy/things failed") as caught:
        objects.put("x", b"1")
    assert "\n" not in str(caught.value)


@pytest.mark.s3
def test_unreachable_endpoint_is_a_clear_error(settings: Settings, s3_store: StoreSettings) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gone = s3_store.model_copy(update={"endpoint": f"http://127.0.0.1:{port}", "timeout_s": 2.0})
    objects = open_objects(settings.model_copy(update={"store": gone}), "things")
    with pytest.raises(StoreError, match="reading x in .* failed"):
        objects.get("x")
