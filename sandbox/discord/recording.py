"""FakeDiscord's record of what the bot sent, and the waits and lookups tests assert with: messages
and edits as REST handlers record them, synced commands, and waiting on any condition."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sandbox.discord.entities import FakeMessage, StoredFile
from sandbox.discord.records import RecordedEdit, RecordedMessage

T = TypeVar("T")


class Recording:
    """Mixed into FakeDiscord: recording the bot's messages and edits, waiting and asserting."""

    async def wait_until(
        self, probe: Callable[[], T | None], *, timeout: float = 10.0, what: str = "a condition"
    ) -> T:
        """Wait until `probe()` returns something other than None (re-checked on every change)."""
        return await self._changes.wait_for(probe, timeout, what)

    async def wait_until_ready(self, timeout: float = 10.0) -> None:
        """The bot identified and was sent READY plus its GUILD_CREATEs."""
        await self.wait_until(
            lambda: True if any(s.guilds_sent for s in self.gateway.sessions.values()) else None,
            timeout=timeout,
            what="the bot to IDENTIFY",
        )

    async def wait_for_message(
        self,
        predicate: Callable[[RecordedMessage], bool] | None = None,
        *,
        channel_id: int | None = None,
        reply_to: int | None = None,
        timeout: float = 10.0,
    ) -> RecordedMessage:
        """The first recorded bot message (in send order) matching all the given filters."""

        def probe() -> RecordedMessage | None:
            # Replies are indexed by what they answer: a benchmark waits on thousands at once.
            candidates = self.sent_messages if reply_to is None else self._replies_to.get(reply_to, [])
            for message in candidates:
                if channel_id is not None and message.channel_id != channel_id:
                    continue
                if reply_to is not None and message.reply_to != reply_to:
                    continue
                if predicate is None or predicate(message):
                    return message
            return None

        return await self.wait_until(probe, timeout=timeout, what="a matching bot message")

    async def wait_for_edit(
        self,
        message_id: int,
        predicate: Callable[[RecordedMessage], bool] | None = None,
        *,
        timeout: float = 10.0,
    ) -> RecordedMessage:
        def probe() -> RecordedMessage | None:
            message = self._recorded_by_id.get(message_id)
            if message is None or not message.edits:
                return None
            return message if predicate is None or predicate(message) else None

        try:
            return await self.wait_until(probe, timeout=timeout, what=f"an edit of message {message_id}")
        except TimeoutError as exc:
            # Say what the message looks like now: "no edit at all" and "an edit that did not
            # match" are different bugs.
            message = self._recorded_by_id.get(message_id)
            now = (
                "never sent"
                if message is None
                else f"{len(message.edits)} edit(s), content {message.content!r}"
            )
            raise TimeoutError(f"{exc} ({now})") from None

    def messages_in(self, channel_id: int) -> list[RecordedMessage]:
        return [m for m in self.sent_messages if m.channel_id == channel_id]

    def recorded(self, message_id: int) -> RecordedMessage:
        return self._recorded_by_id[message_id]

    @property
    def registered_commands(self) -> list[dict[str, Any]]:
        """Every command the bot synced (global ones have guild_id None)."""
        return [c for scope in self.commands.values() for c in scope]

    def registered_command(
        self, name: str, *, guild_id: int | None = None, type: int | None = None
    ) -> dict[str, Any]:
        scopes = [guild_id, None] if guild_id is not None else [None]
        for scope in scopes:
            for command in self.commands.get(scope, []):
                if command["name"] == name and (type is None or command.get("type", 1) == type):
                    return command
        known = sorted(c["name"] for c in self.registered_commands)
        raise LookupError(f"no synced command {name!r} (type {type}) for guild {guild_id}; synced: {known}")

    def _record_bot_message(self, message: FakeMessage, **extra: Any) -> RecordedMessage:
        recorded = RecordedMessage(
            id=message.id,
            channel_id=message.channel_id,
            guild_id=message.guild_id,
            content=message.content,
            embeds=message.embeds,
            components=message.components,
            flags=message.flags,
            created_at=time.monotonic(),
            **extra,
        )
        self.sent_messages.append(recorded)
        self._recorded_by_id[message.id] = recorded
        if recorded.reply_to is not None:
            self._replies_to.setdefault(recorded.reply_to, []).append(recorded)
        self._changes.notify()
        return recorded

    def _record_edit(
        self, message: FakeMessage, changes: dict[str, Any], via: str, files: Iterable[StoredFile]
    ) -> None:
        recorded = self._recorded_by_id.get(message.id)
        edit = RecordedEdit(message.id, message.channel_id, changes, time.monotonic(), via)
        self.edits.append(edit)
        if recorded is not None:
            recorded.content = message.content
            recorded.embeds = message.embeds
            recorded.components = message.components
            recorded.flags = message.flags
            recorded.files.extend(files)
            if "allowed_mentions" in changes:
                recorded.allowed_mentions = changes["allowed_mentions"]
            recorded.edits.append(edit)
        self._changes.notify()
