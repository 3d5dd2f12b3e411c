"""FakeDiscord's member side, outside interactions: members post (in channels and DMs), edit and
delete messages and react; the bot gets the gateway events its intents allow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sandbox.discord.entities import FakeMessage, StoredFile, iso_now

Attachment = tuple[str, bytes, str]  # filename, data, content type


class MemberActions:
    """Mixed into FakeDiscord: acting as members, with its world, gateway and records."""

    async def post_message(
        self,
        channel_id: int,
        author_id: int,
        content: str = "",
        *,
        attachments: Sequence[Attachment] = (),
        embeds: Sequence[dict[str, Any]] = (),
        reply_to: int | None = None,
    ) -> int:
        """A member posts in a channel; the bot gets MESSAGE_CREATE (subject to its intents)."""
        channel = self.world.channel(channel_id)
        guild = self.world.guild_of(channel_id)
        if guild is not None:
            guild.member(author_id)
        else:
            self.world.user(author_id)
        message = FakeMessage(
            id=self.world.snowflake(),
            channel_id=channel_id,
            guild_id=guild.id if guild else None,
            author_id=author_id,
            content=content,
            embeds=[dict(e) for e in embeds],
            attachments=[self._store_attachment(channel_id, StoredFile(*a)) for a in attachments],
        )
        if reply_to is not None:
            message.type = 19
            message.message_reference = {
                "type": 0,
                "message_id": str(reply_to),
                "channel_id": str(channel_id),
                **({"guild_id": str(guild.id)} if guild else {}),
            }
        self.world.messages[message.id] = message
        channel.last_message_id = message.id
        self._dispatch_message("MESSAGE_CREATE", message)
        return message.id

    async def post_dm(
        self, author_id: int, content: str = "", *, attachments: Sequence[Attachment] = ()
    ) -> int:
        """A user writes to the bot in a DM (content is never withheld in DMs)."""
        channel = self.world.dm_channel(author_id)
        return await self.post_message(channel.id, author_id, content, attachments=attachments)

    def forget_attachments(self, message_id: int) -> int:
        """Stop serving a member message's attachments (404 from now on), so that a long run of
        posts keeps the fake's memory flat; returns how many files were dropped."""
        message = self._message(message_id)
        dropped = 0
        for attachment in message.attachments:
            dropped += self.world.files.pop(attachment["id"], None) is not None
        return dropped

    async def edit_member_message(self, message_id: int, content: str) -> None:
        message = self._message(message_id)
        message.content = content
        message.edited_timestamp = iso_now()
        self._dispatch_message("MESSAGE_UPDATE", message)

    def delete_message(self, channel_id: int, message_id: int) -> None:
        """Delete any message; replies referencing it then fail with 'Unknown message' (50035)."""
        message = self._message(message_id)
        if message.channel_id != channel_id:
            raise KeyError(f"message {message_id} is not in channel {channel_id}")
        message.deleted = True
        data = {"id": str(message_id), "channel_id": str(channel_id)}
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        self.gateway.dispatch(
            "MESSAGE_DELETE", lambda s: data if self._wants_message(s, message) else None, message.guild_id
        )
        recorded = self._recorded_by_id.get(message_id)
        if recorded is not None:
            recorded.deleted = True
        self._changes.notify()

    async def react(self, message_id: int, member_id: int, emoji: str) -> None:
        message = self._message(message_id)
        message.reactions.setdefault(emoji, set()).add(member_id)
        data: dict[str, Any] = {
            "user_id": str(member_id),
            "channel_id": str(message.channel_id),
            "message_id": str(message_id),
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "type": 0,
            "message_author_id": str(message.author_id),
        }
        if message.guild_id is not None:
            guild = self.guild(message.guild_id)
            data["guild_id"] = str(guild.id)
            data["member"] = guild.member(member_id).payload()
        self.gateway.dispatch(
            "MESSAGE_REACTION_ADD", lambda s: data if s.has(1 << 10) else None, message.guild_id
        )
