"""Starting the bot: `namae bot` with a real token (the offline `--sandbox` session is `namae.sandbox_session`)."""

from __future__ import annotations

import logging

import discord

from bot.endpoints import point_discord_py_at
from bot.sharding import describe_shards
from catalog.db import open_catalog
from catalog.errors import CatalogError
from catalog.settings import Settings, secret_value

log = logging.getLogger(__name__)


def build_bot(settings: Settings, **options):
    """The bot with its catalog, registry and face detector, not yet connected."""
    from bot.app import NamaeBot
    from catalog.finder_store import finder_folder
    from media.faces import face_finder
    from models.registry import Registry

    engine = open_catalog(settings.resolved_database_url)
    registry = Registry.from_settings(settings, engine)
    return NamaeBot(
        settings, engine, registry, detector=face_finder(settings, finder_folder(settings)), **options
    )


def run_bot(settings: Settings) -> None:
    """Run until interrupted; needs a bot token in NAMAE_DISCORD__TOKEN."""
    token = secret_value(settings.discord.token)
    if not token:
        raise CatalogError(
            "no Discord bot token: set NAMAE_DISCORD__TOKEN (or [discord] token in namae.toml), "
            "or try `namae bot --sandbox`"
        )
    if settings.discord.api_base and settings.discord.gateway_url:
        point_discord_py_at(settings.discord.api_base, settings.discord.gateway_url)
    bot = build_bot(settings)
    log.info("running %s", describe_shards(settings.discord))
    try:
        bot.run(token, log_handler=None)  # our logging configuration stays in charge
    except discord.LoginFailure as exc:
        raise CatalogError(f"Discord refused the bot token in NAMAE_DISCORD__TOKEN: {exc}") from exc
    except discord.PrivilegedIntentsRequired as exc:
        raise CatalogError(
            "enable the Message Content intent for the bot in the Discord developer portal "
            "(the bot needs it to see attachments)"
        ) from exc
    except discord.ConnectionClosed as exc:
        if exc.code in SHARD_REFUSALS:
            raise CatalogError(SHARD_REFUSALS[exc.code]) from exc
        raise


# Close codes after which discord.py gives up, with what the operator should change.
SHARD_REFUSALS = {
    4010: (
        "Discord refused the shard settings (close code 4010, invalid shard): shard ids must be below "
        "NAMAE_DISCORD__SHARD_COUNT, and a large bot's count must be a multiple of the one Discord "
        "assigned; leave the count unset to take Discord's"
    ),
    4011: (
        "Discord requires more shards (close code 4011, sharding required): a shard holds at most "
        "2,500 guilds; raise NAMAE_DISCORD__SHARD_COUNT (or --shard-count), or leave it unset to take "
        "Discord's recommended count"
    ),
}
