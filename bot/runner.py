"""Starting the bot: `namae bot` (a real token) and `namae bot --sandbox` (the fake Discord)."""

from __future__ import annotations

import asyncio
import logging

import discord.gateway
import discord.http
import yarl

from catalog.db import open_catalog
from catalog.errors import CatalogError
from catalog.settings import Settings, secret_value

log = logging.getLogger(__name__)


def point_at(api_base: str | None, gateway_url: str | None) -> None:
    """Use another Discord API and gateway (the two class attributes discord.py reads)."""
    if api_base:
        discord.http.Route.BASE = api_base.rstrip("/")
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def build_bot(settings: Settings, **options):
    """The bot with its catalog, registry and face detector, not yet connected."""
    from bot.app import NamaeBot
    from bot.inference import make_detector
    from models.registry import Registry

    engine = open_catalog(settings.resolved_database_url)
    registry = Registry.from_settings(settings, engine)
    return NamaeBot(settings, engine, registry, detector=make_detector(settings), **options)


def run_bot(settings: Settings, *, sandbox: bool = False) -> None:
    """Run until interrupted. Without `sandbox` this needs a bot token in NAMAE_DISCORD__TOKEN."""
    if sandbox:
        from bot.sandbox_session import run_sandbox

        for line in asyncio.run(run_sandbox(settings)):
            log.info("%s", line)
        return
    token = secret_value(settings.discord.token)
    if not token:
        raise CatalogError(
            "no Discord bot token: set NAMAE_DISCORD__TOKEN (or [discord] token in namae.toml), "
            "or try `namae bot --sandbox`"
        )
    point_at(settings.discord.api_base, settings.discord.gateway_url)
    bot = build_bot(settings)
    try:
        bot.run(token, log_handler=None)  # our logging configuration stays in charge
    except discord.LoginFailure as exc:
        raise CatalogError(f"Discord refused the bot token in NAMAE_DISCORD__TOKEN: {exc}") from exc
    except discord.PrivilegedIntentsRequired as exc:
        raise CatalogError(
            "enable the Message Content intent for the bot in the Discord developer portal "
            "(the bot needs it to see attachments)"
        ) from exc
