"""A face finder installed while the bot runs (`namae train-faces` on another machine) is used from
the next look at the store, without a restart, and answers found by the old finder are not served
from the cache for it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from catalog.finder_store import install_finder
from media.facenet import NetFaceFinder
from media.faces import FaceDetector
from tests.fixtures.bot import BotHarness

pytest.importorskip("onnx", reason="building the stand-in face finder needs the onnx package (train extra)")
from tests.fixtures.finders import write_finder


def plain_picture() -> bytes:
    """A picture the cascade finds no face in."""
    out = io.BytesIO()
    Image.new("RGB", (400, 300), (200, 170, 140)).save(out, "JPEG", quality=90)
    return out.getvalue()


async def test_a_finder_installed_while_the_bot_runs_is_used_without_a_restart(
    harness: BotHarness, tmp_path: Path
) -> None:
    bot = harness.bot
    assert bot is not None and isinstance(bot.inference.detector, FaceDetector)
    assert bot.inference.finder_version is None
    picture = plain_picture()
    before = await harness.reply_to(await harness.post(("plain.jpg", picture, "image/jpeg")))
    assert "no face found" in before.text()
    assert await bot.inference.check_finder() is False  # nothing installed: nothing changes

    # The stand-in finder sees one face at a fixed place (in its 320 px input: 0.8 of the picture).
    folder = write_finder(tmp_path / "finder", [[80.0, 40.0, 240.0, 200.0, 0.9]])
    installed = install_finder(harness.settings, folder)

    assert await bot.inference.check_finder() is True
    assert isinstance(bot.inference.detector, NetFaceFinder)
    assert bot.inference.finder_version == installed.version
    assert await bot.inference.check_finder() is False  # the same version: no reload

    after = await harness.reply_to(await harness.post(("plain.jpg", picture, "image/jpeg")))
    assert "no face found" not in after.text() and "face 1" in after.text(), after.text()
