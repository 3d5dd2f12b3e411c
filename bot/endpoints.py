"""Where discord.py connects: Discord itself, or another REST API and gateway (`discord.api_base`
and `discord.gateway_url` in the settings; the offline sandbox's fake on 127.0.0.1).

Two documented class attributes of discord.py, nothing patched; `restore()` puts them back.
"""

from __future__ import annotations

from dataclasses import dataclass

import discord.gateway
import discord.http
import yarl


@dataclass(frozen=True)
class DiscordPyTarget:
    """Where discord.py was pointing before; `restore()` puts it back."""

    previous_api_base: str
    previous_gateway: yarl.URL

    def restore(self) -> None:
        discord.http.Route.BASE = self.previous_api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self.previous_gateway


def point_discord_py_at(api_base: str, gateway_url: str) -> DiscordPyTarget:
    """Send discord.py's REST calls to `api_base` (e.g. http://127.0.0.1:PORT/api/v10) and its
    gateway to `gateway_url`. A sharded client reads the gateway from GET /gateway/bot as well."""
    api = yarl.URL(api_base.rstrip("/"))
    gateway = yarl.URL(gateway_url)
    if api.scheme not in ("http", "https") or not api.host:
        raise ValueError(f"expected an http(s) API URL like http://127.0.0.1:PORT/api/v10, got {api_base!r}")
    if gateway.scheme not in ("ws", "wss") or not gateway.host:
        raise ValueError(f"expected a ws(s) gateway URL like ws://127.0.0.1:PORT/, got {gateway_url!r}")
    target = DiscordPyTarget(discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    discord.http.Route.BASE = str(api)
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
    return target
