"""How often members and guilds may ask for classifications: discord.py's own cooldown buckets,
per member (in a guild, or in DMs) and per guild."""

from __future__ import annotations

import time

from discord.ext import commands

from catalog.settings_sections import BotSettings


class Cooldowns:
    def __init__(self, settings: BotSettings) -> None:
        self.member = commands.CooldownMapping(
            commands.Cooldown(settings.member_cooldown_rate, settings.member_cooldown_s), lambda key: key
        )
        self.guild = commands.CooldownMapping(
            commands.Cooldown(settings.guild_cooldown_rate, settings.guild_cooldown_s), lambda key: key
        )

    def retry_after(self, guild_id: int | None, member_id: int) -> tuple[float, commands.Cooldown] | None:
        """None when the request may go ahead (and is counted); else the wait and the full bucket."""
        now = time.time()
        member_bucket = self.member.get_bucket((guild_id, member_id), now)
        assert member_bucket is not None
        wait = member_bucket.update_rate_limit(now)
        if wait:
            return wait, member_bucket
        if guild_id is not None:
            guild_bucket = self.guild.get_bucket(guild_id, now)
            assert guild_bucket is not None
            wait = guild_bucket.update_rate_limit(now)
            if wait:
                return wait, guild_bucket
        return None
