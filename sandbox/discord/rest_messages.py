"""REST messages in channels: read, send (replies, attachments), edit, delete, typing and the bot's
reactions, each refused as Discord refuses it (permissions, unknown message, payload limits)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from sandbox.discord.entities import EPHEMERAL, LOADING, FakeChannel, FakeMessage, StoredFile, iso_now
from sandbox.discord.http_util import ApiError, form_error, json_response, read_body, unknown
from sandbox.discord.permissions import ATTACH_FILES, MANAGE_MESSAGES, READ_MESSAGE_HISTORY, SEND_MESSAGES
from sandbox.discord.rest_base import RestBase, _int
from sandbox.discord.validation import check_message


class MessageRoutes(RestBase):
    """The /channels/{channel_id}/messages, typing and reaction handlers of RestApi."""

    def _stored_message(self, channel: FakeChannel, request: web.Request) -> FakeMessage:
        message = self.world.messages.get(_int(request, "message_id"))
        if (
            message is None
            or message.deleted
            or message.channel_id != channel.id
            or message.flags & EPHEMERAL
        ):
            raise unknown("Message", 10008)
        return message

    def _payload_for_bot(self, message: FakeMessage) -> dict[str, Any]:
        # REST reads follow the app's message-content approval, not the gateway intents.
        strip = (
            not self.fake.message_content_intent_allowed
            and message.guild_id is not None
            and message.author_id != self.fake.bot_user_id
        )
        return self.world.message_payload(message, strip_content=strip)

    async def get_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        self._require(channel, READ_MESSAGE_HISTORY)
        return json_response(self._payload_for_bot(self._stored_message(channel, request)))

    async def get_messages(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        self._require(channel, READ_MESSAGE_HISTORY)
        limit = min(100, int(request.query.get("limit", "50")))
        before = int(request.query.get("before", str(1 << 63)))
        after = int(request.query.get("after", "0"))
        found = [
            m
            for m in self.world.messages.values()
            if m.channel_id == channel.id
            and not m.deleted
            and not m.flags & EPHEMERAL
            and after < m.id < before
        ]
        found.sort(key=lambda m: m.id, reverse=True)
        if "after" in request.query and "before" not in request.query:
            found = sorted(found, key=lambda m: m.id)[:limit][::-1]
        return json_response([self._payload_for_bot(m) for m in found[:limit]])

    async def create_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        body, files = await read_body(request)
        self._require(channel, SEND_MESSAGES)
        if files:
            self._require(channel, ATTACH_FILES)
        check_message(body, has_files=bool(files))
        if body.get("message_reference"):
            self._require(channel, READ_MESSAGE_HISTORY)
        reference = self._reference(channel, body.get("message_reference"))
        message = self._new_message(channel, body, files, author_id=self.fake.bot_user_id)
        message.message_reference = reference
        if reference is not None:
            message.type = 19
        self.fake._record_bot_message(
            message,
            allowed_mentions=body.get("allowed_mentions"),
            message_reference=body.get("message_reference"),
            files=files,
            via="channel",
            interaction_id=None,
            request=body,
        )
        self.fake._dispatch_message("MESSAGE_CREATE", message)
        return json_response(self.world.message_payload(message))

    def _reference(self, channel: FakeChannel, reference: dict[str, Any] | None) -> dict[str, Any] | None:
        if not reference:
            return None
        target_id = int(reference.get("message_id", 0))
        target = self.world.messages.get(target_id)
        if target is None or target.deleted:
            if reference.get("fail_if_not_exists", True):
                raise form_error("message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
            return None
        data = {
            "type": reference.get("type", 0),
            "message_id": str(target_id),
            "channel_id": str(target.channel_id),
        }
        if target.guild_id is not None:
            data["guild_id"] = str(target.guild_id)
        return data

    def _new_message(
        self, channel: FakeChannel, body: dict[str, Any], files: list[StoredFile], *, author_id: int
    ) -> FakeMessage:
        message = FakeMessage(
            id=self.world.snowflake(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author_id=author_id,
            content=str(body.get("content") or ""),
            embeds=list(body.get("embeds") or []),
            components=list(body.get("components") or []),
            flags=int(body.get("flags") or 0),
            attachments=self._attachments(channel, body, files),
        )
        self.world.messages[message.id] = message
        channel.last_message_id = message.id
        return message

    def _attachments(
        self,
        channel: FakeChannel,
        body: dict[str, Any],
        files: list[StoredFile],
        existing: list[dict[str, Any]] = (),
    ) -> list[dict[str, Any]]:
        """Keep existing attachments the body lists by id; store new files (files[n])."""
        described = {str(a.get("id")): a for a in body.get("attachments") or []}
        kept = [a for a in existing if a["id"] in described] if "attachments" in body else list(existing)
        new = []
        for index, file in enumerate(files):
            meta = described.get(str(index), {})
            name = meta.get("filename") or file.name
            stored = StoredFile(name, file.data, file.content_type)
            new.append(self.fake._store_attachment(channel.id, stored, description=meta.get("description")))
        return kept + new

    async def edit_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        message = self._stored_message(channel, request)
        if message.author_id != self.fake.bot_user_id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        body, files = await read_body(request)
        self._apply_edit(channel, message, body, files, via="channel")
        return json_response(self.world.message_payload(message))

    def _apply_edit(
        self,
        channel: FakeChannel,
        message: FakeMessage,
        body: dict[str, Any],
        files: list[StoredFile],
        *,
        via: str,
    ) -> None:
        check_message(body, has_files=bool(files), editing=True)
        if "content" in body:
            message.content = str(body["content"] or "")
        if "embeds" in body:
            message.embeds = list(body["embeds"] or [])
        if "components" in body:
            message.components = list(body["components"] or [])
        if "flags" in body and body["flags"] is not None:
            # Only SUPPRESS_EMBEDS may change on edit; ephemeral/loading stay as they were.
            message.flags = (message.flags & (EPHEMERAL | LOADING)) | (
                int(body["flags"]) & ~(EPHEMERAL | LOADING)
            )
        if files or "attachments" in body:
            message.attachments = self._attachments(channel, body, files, message.attachments)
        message.edited_timestamp = iso_now()
        self.fake._record_edit(message, body, via, files)
        if not message.flags & EPHEMERAL:
            self.fake._dispatch_message("MESSAGE_UPDATE", message)

    async def delete_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        message = self._stored_message(channel, request)
        if message.author_id != self.fake.bot_user_id:
            self._require(channel, MANAGE_MESSAGES)
        self.fake.deleted_message_ids.append(message.id)
        self.fake.delete_message(channel.id, message.id)
        return web.Response(status=204)

    async def typing(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        self._require(channel, SEND_MESSAGES)
        self.fake.typing.append((channel.id, time.monotonic()))
        return web.Response(status=204)

    async def add_reaction(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        message = self._stored_message(channel, request)
        emoji = request.match_info["emoji"]
        message.reactions.setdefault(emoji, set()).add(self.fake.bot_user_id)
        self.fake.reactions.append((message.id, emoji, True))
        self.fake._changes.notify()
        return web.Response(status=204)

    async def remove_reaction(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        message = self._stored_message(channel, request)
        emoji = request.match_info["emoji"]
        message.reactions.get(emoji, set()).discard(self.fake.bot_user_id)
        self.fake.reactions.append((message.id, emoji, False))
        self.fake._changes.notify()
        return web.Response(status=204)
