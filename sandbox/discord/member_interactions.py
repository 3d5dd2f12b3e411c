"""FakeDiscord's members using the bot's application commands and components: slash commands (in
guilds and DMs), autocomplete, context menus, button clicks, select menus and modal submits, each
sent as the INTERACTION_CREATE Discord would send."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sandbox.discord import interactions as ix
from sandbox.discord.entities import FakeMessage
from sandbox.discord.member_actions import Attachment
from sandbox.discord.permissions import (
    ADD_REACTIONS,
    ATTACH_FILES,
    EMBED_LINKS,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    USE_APPLICATION_COMMANDS,
    USE_EXTERNAL_EMOJIS,
    VIEW_CHANNEL,
)
from sandbox.discord.records import InteractionHandle

# What an app may do in its bot's DM with a user (the interaction's app_permissions there).
DM_APP_PERMISSIONS = (
    VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY | ADD_REACTIONS
    | USE_EXTERNAL_EMOJIS | USE_APPLICATION_COMMANDS
)  # fmt: skip


class MemberInteractions:
    """Mixed into FakeDiscord: members invoking its commands and components."""

    async def slash(
        self,
        guild_id: int,
        channel_id: int,
        member_id: int,
        command: str,
        options: Mapping[str, Any] | None = None,
        *,
        attachments: Mapping[str, Attachment] | None = None,
    ) -> InteractionHandle:
        """Invoke a synced slash command; `command` may be a path ("character add")."""
        merged = dict(options or {}) | dict(attachments or {})
        data = ix.chat_input_data(self, guild_id, channel_id, command, merged, focused=None)
        return self._send_interaction(2, guild_id, channel_id, member_id, data)

    async def slash_dm(
        self,
        user_id: int,
        command: str,
        options: Mapping[str, Any] | None = None,
        *,
        attachments: Mapping[str, Attachment] | None = None,
    ) -> InteractionHandle:
        """Invoke a synced slash command in the user's DM with the bot (refused, as the client
        would, when the command's contexts leave DMs out)."""
        channel = self.world.dm_channel(user_id)
        merged = dict(options or {}) | dict(attachments or {})
        data = ix.chat_input_data(self, None, channel.id, command, merged, focused=None)
        return self._send_interaction(2, None, channel.id, user_id, data)

    async def autocomplete(
        self,
        guild_id: int,
        channel_id: int,
        member_id: int,
        command: str,
        options: Mapping[str, Any],
        focused: str,
        *,
        timeout: float = 3.0,
    ) -> list[dict[str, Any]]:
        """Type into an autocomplete option; returns the choices the bot offered."""
        data = ix.chat_input_data(self, guild_id, channel_id, command, dict(options), focused=focused)
        handle = self._send_interaction(4, guild_id, channel_id, member_id, data)
        callback = await handle.response(timeout)
        if callback.type != 8 or callback.data is None:
            raise AssertionError(f"autocomplete answered with callback type {callback.type}, not 8")
        return list(callback.data.get("choices", []))

    async def context_menu(
        self,
        guild_id: int,
        channel_id: int,
        member_id: int,
        name: str,
        target_message_id: int | None = None,
        *,
        target_user_id: int | None = None,
    ) -> InteractionHandle:
        """Use a message (or, with target_user_id, a user) context-menu command."""
        data = ix.context_menu_data(self, guild_id, channel_id, name, target_message_id, target_user_id)
        return self._send_interaction(2, guild_id, channel_id, member_id, data)

    async def click(self, message_id: int, custom_id: str, member_id: int) -> InteractionHandle:
        """Click a button on a message the bot sent."""
        message, component = ix.find_component(self, message_id, custom_id, kinds=(2,))
        data = {"custom_id": custom_id, "component_type": 2}
        if "id" in component:
            data["id"] = component["id"]
        return self._component_interaction(message, member_id, data)

    async def choose(
        self, message_id: int, custom_id: str, values: Sequence[str | int], member_id: int
    ) -> InteractionHandle:
        """Pick values in a select menu (string, user, role, mentionable or channel select)."""
        message, component = ix.find_component(self, message_id, custom_id, kinds=(3, 5, 6, 7, 8))
        data = ix.select_data(self, message, component, [str(v) for v in values])
        return self._component_interaction(message, member_id, data)

    async def submit_modal(
        self, custom_id: str, fields: Mapping[str, str], member_id: int
    ) -> InteractionHandle:
        """Submit the modal the bot opened most recently with this custom_id (fields by input custom_id)."""
        opener, modal = ix.find_modal(self, custom_id)
        data = ix.modal_submit_data(modal, dict(fields))
        guild_id = int(opener.payload["guild_id"])
        channel_id = int(opener.payload["channel_id"])
        message = None
        if opener.type == 3 and "message" in opener.payload:
            message = self.world.messages[int(opener.payload["message"]["id"])]
        return self._send_interaction(5, guild_id, channel_id, member_id, data, message=message)

    def _component_interaction(
        self, message: FakeMessage, member_id: int, data: dict[str, Any]
    ) -> InteractionHandle:
        if message.guild_id is None:
            raise ValueError("component interactions in DMs are not supported by the fake")
        return self._send_interaction(
            3, message.guild_id, message.channel_id, member_id, data, message=message
        )

    def _send_interaction(
        self,
        type: int,
        guild_id: int | None,
        channel_id: int,
        member_id: int,
        data: dict[str, Any],
        *,
        message: FakeMessage | None = None,
    ) -> InteractionHandle:
        """`guild_id` None: an interaction in the user's DM with the bot (context 1): a `user`
        instead of a `member`, and "0" as the guild-install owner, as Discord sends it."""
        interaction_id = self.world.snowflake()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": type,
            "data": data,
            "channel_id": str(channel_id),
            "token": token,
            "version": 1,
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if guild_id is None:
            payload |= {
                "channel": self.world.channel(channel_id).payload(self.world),
                "user": self.world.user(member_id).payload(),
                "app_permissions": str(DM_APP_PERMISSIONS),
                "authorizing_integration_owners": {"0": "0"},
                "context": 1,
            }
        else:
            guild = self.guild(guild_id)
            channel = guild.channel(channel_id)
            member = guild.member(member_id)
            payload |= {
                "guild_id": str(guild_id),
                "guild": {"id": str(guild_id), "locale": "en-US", "features": []},
                "channel": channel.payload()
                | {"permissions": str(guild.member_permissions(member_id, channel_id))},
                "member": member.payload(permissions=guild.member_permissions(member_id, channel_id)),
                "app_permissions": str(guild.member_permissions(self.bot_user_id, channel_id)),
                "guild_locale": "en-US",
                "authorizing_integration_owners": {"0": str(guild_id)},
                "context": 0,
            }
        if message is not None:
            payload["message"] = self.world.message_payload(message)
        handle = InteractionHandle(
            self, interaction_id=interaction_id, token=token, type=type, payload=payload
        )
        self.interactions.append(handle)
        self._handles_by_id[interaction_id] = handle
        self._handles_by_token[token] = handle
        handle.dispatched_at = time.monotonic()
        self.gateway.dispatch("INTERACTION_CREATE", lambda _s: payload, guild_id)
        return handle
