"""Pointing discord.py at a fake: two documented class attributes, nothing patched."""

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


def point_discord_py_at(base_url: str) -> DiscordPyTarget:
    """Send discord.py's REST calls to `{base_url}/api/v10` and its gateway to the same port.

    The gateway URL a sharded client reads from GET /gateway/bot is the fake's too.
    """
    base = yarl.URL(base_url.rstrip("/"))
    if base.scheme not in ("http", "https") or not base.host:
        raise ValueError(f"expected an http(s) URL like http://127.0.0.1:PORT, got {base_url!r}")
    target = DiscordPyTarget(discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    discord.http.Route.BASE = f"{base}/api/v10"
    ws_scheme = "wss" if base.scheme == "https" else "ws"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = base.with_scheme(ws_scheme).with_path("/")
    return target
