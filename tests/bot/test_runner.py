"""Starting the bot: a clear error without a token; the sandbox session answers its own script."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.runner import run_bot
from catalog.errors import CatalogError
from namae.sandbox_session import run_sandbox
from tests.fixtures.bot import bot_settings


def test_missing_token_names_the_variable(data_dir: Path, cascade_path: Path) -> None:
    settings = bot_settings(data_dir, cascade_path)
    with pytest.raises(CatalogError, match="NAMAE_DISCORD__TOKEN"):
        run_bot(settings)


async def test_sandbox_session_answers_the_scripted_post(
    data_dir: Path, cascade_path: Path, model_source: tuple[Path, list[str]]
) -> None:
    settings = bot_settings(data_dir, cascade_path)
    shutil.copytree(model_source[0], settings.registry_dir)
    transcript = await run_sandbox(settings)
    text = "\n".join(transcript)
    assert "bot ready" in text and "**Image 1**" in text and "**Image 2**" in text, text
