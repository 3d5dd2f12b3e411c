"""The REST API under /api/v{n}: what discord.py calls at login, for messages, commands and interactions."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sandbox.discord.entities import EPHEMERAL, LOADING, FakeChannel, FakeMessage, StoredFile, iso_now
from sandbox.discord.http_util import (
    ApiError,
    form_error,
    json_response,
    read_body,
    too_many_requests,
    unknown,
)
from sandbox.discord.permissions import (
    ATTACH_FILES,
    MANAGE_MESSAGES,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    VIEW_CHANNEL,
)
from sandbox.discord.records import InteractionCallback, InteractionHandle, RequestRecord
from sandbox.discord.validation import (
    check_autocomplete,
    check_command,
    check_commands,
    check_message,
    check_modal,
)

if TYPE_CHECKING:
    from sandbox.discord.server import FakeDiscord

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API = "/api/v{version:\\d+}"
NO_AUTH = ("/interactions/", "/webhooks/")
MAJOR_PARAMETERS = ("channel_id", "guild_id", "webhook_id", "webhook_token", "interaction_id")

# Callback types.
PONG, MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE, AUTOCOMPLETE, MODAL = 1, 4, 5, 6, 7, 8, 9


class RestApi:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.world = fake.world

    @staticmethod
    def middleware_for(fake: FakeDiscord) -> Any:
        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            is_api = request.path.startswith("/api/")
            headers: dict[str, str] = {}
            try:
                if is_api:
                    forced = _take_forced(fake, request)
                    if forced is not None:
                        response = too_many_requests(forced[0], is_global=forced[1], headers={})
                        return _record(fake, request, response, rate_limited=True)
                    _check_auth(fake, request)
                    if not any(marker in request.path for marker in NO_AUTH):
                        # Discord's global limit: per bot, whatever its shards and processes;
                        # interaction callbacks and webhooks are outside it.
                        _, retry_after = fake.global_rate_limiter.take("global", "")
                        if retry_after is not None:
                            response = too_many_requests(retry_after, is_global=True, headers={})
                            return _record(fake, request, response, rate_limited=True)
                    route = request.match_info.route.resource
                    route_key = f"{request.method} {route.canonical if route else request.path}"
                    major = ":".join(request.match_info.get(p, "") for p in MAJOR_PARAMETERS)
                    headers, retry_after = fake.rate_limiter.take(route_key, major)
                    if retry_after is not None:
                        response = too_many_requests(retry_after, is_global=False, headers=headers)
                        return _record(fake, request, response, rate_limited=True)
                response = await handler(request)
            except ApiError as error:
                response = error.response()
            except web.HTTPNotFound:
                response = json_response({"message": "404: Not Found", "code": 0}, 404)
                fake.unhandled_requests.append(_request_record(request, 404))
            except web.HTTPMethodNotAllowed:
                response = json_response({"message": "405: Method Not Allowed", "code": 0}, 405)
                fake.unhandled_requests.append(_request_record(request, 405))
            except KeyError as error:
                # A lookup in the world failed: Discord answers 404 with its own wording.
                response = json_response({"message": f"Unknown: {error.args[0]}", "code": 10003}, 404)
            response.headers.update(headers)
            return _record(fake, request, response)

        return middleware

    def register(self, app: web.Application) -> None:
        r = app.router
        r.add_get(f"{API}/gateway", self.get_gateway)
        r.add_get(f"{API}/gateway/bot", self.get_gateway_bot)
        r.add_get(f"{API}/users/@me", self.get_me)
        r.add_post(f"{API}/users/@me/channels", self.create_dm)
        r.add_get(f"{API}/users/{{user_id}}", self.get_user)
        r.add_get(f"{API}/oauth2/applications/@me", self.get_application)
        r.add_get(f"{API}/applications/@me", self.get_application)
        for prefix in (
            f"{API}/applications/{{app_id}}",
            f"{API}/applications/{{app_id}}/guilds/{{guild_id}}",
        ):
            r.add_get(f"{prefix}/commands", self.get_commands)
            r.add_put(f"{prefix}/commands", self.put_commands)
            r.add_post(f"{prefix}/commands", self.post_command)
            r.add_get(f"{prefix}/commands/{{command_id}}", self.get_command)
            r.add_patch(f"{prefix}/commands/{{command_id}}", self.patch_command)
            r.add_delete(f"{prefix}/commands/{{command_id}}", self.delete_command)
        r.add_get(f"{API}/channels/{{channel_id}}", self.get_channel)
        r.add_get(f"{API}/channels/{{channel_id}}/messages", self.get_messages)
        r.add_post(f"{API}/channels/{{channel_id}}/messages", self.create_message)
        r.add_get(f"{API}/channels/{{channel_id}}/messages/{{message_id}}", self.get_message)
        r.add_patch(f"{API}/channels/{{channel_id}}/messages/{{message_id}}", self.edit_message)
        r.add_delete(f"{API}/channels/{{channel_id}}/messages/{{message_id}}", self.delete_message)
        r.add_post(f"{API}/channels/{{channel_id}}/typing", self.typing)
        reaction = f"{API}/channels/{{channel_id}}/messages/{{message_id}}/reactions/{{emoji}}/@me"
        r.add_put(reaction, self.add_reaction)
        r.add_delete(reaction, self.remove_reaction)
        r.add_get(f"{API}/guilds/{{guild_id}}", self.get_guild)
        r.add_get(f"{API}/guilds/{{guild_id}}/channels", self.get_guild_channels)
        r.add_get(f"{API}/guilds/{{guild_id}}/roles", self.get_roles)
        r.add_get(f"{API}/guilds/{{guild_id}}/members", self.get_members)
        r.add_get(f"{API}/guilds/{{guild_id}}/members/{{user_id}}", self.get_member)
        r.add_post(f"{API}/interactions/{{interaction_id}}/{{webhook_token}}/callback", self.callback)
        hook = f"{API}/webhooks/{{webhook_id}}/{{webhook_token}}"
        r.add_post(hook, self.followup)
        r.add_get(f"{hook}/messages/{{message_id}}", self.get_webhook_message)
        r.add_patch(f"{hook}/messages/{{message_id}}", self.edit_webhook_message)
        r.add_delete(f"{hook}/messages/{{message_id}}", self.delete_webhook_message)
        r.add_get("/attachments/{channel_id}/{file_id}/{name}", self.serve)
        r.add_get("/media/attachments/{channel_id}/{file_id}/{name}", self.serve)
        r.add_get("/files/{file_id}/{name}", self.serve)

    # ---- login and metadata -------------------------------------------------------------

    async def get_gateway(self, _: web.Request) -> web.Response:
        return json_response({"url": self.fake.gateway_url.rstrip("/")})

    async def get_gateway_bot(self, _: web.Request) -> web.Response:
        guilds = sum(1 for g in self.world.guilds.values() if self.fake.bot_user_id in g.members)
        gateway = self.fake.gateway
        return json_response(
            {
                "url": self.fake.gateway_url.rstrip("/"),
                "shards": gateway.rules.recommended_shards(guilds),
                "session_start_limit": gateway.identify_gate.session_start_limit(),
            }
        )

    async def get_me(self, _: web.Request) -> web.Response:
        bot = self.world.user(self.fake.bot_user_id)
        return json_response(
            bot.payload() | {"verified": True, "mfa_enabled": False, "email": None, "locale": "en-US"}
        )

    async def get_user(self, request: web.Request) -> web.Response:
        user = self.world.users.get(_int(request, "user_id"))
        if user is None:
            raise unknown("User", 10013)
        return json_response(user.payload())

    async def create_dm(self, request: web.Request) -> web.Response:
        body, _ = await read_body(request)
        user_id = int(body.get("recipient_id", 0))
        if user_id not in self.world.users:
            raise unknown("User", 10013)
        return json_response(self.world.dm_channel(user_id).payload(self.world))

    async def get_application(self, _: web.Request) -> web.Response:
        return json_response(self.fake._application_payload())

    # ---- application commands -----------------------------------------------------------

    def _scope(self, request: web.Request) -> int | None:
        if int(request.match_info["app_id"]) != self.fake.application_id:
            raise ApiError(403, 50001, "Missing Access")
        if "guild_id" not in request.match_info:
            return None
        guild_id = _int(request, "guild_id")
        guild = self.world.guilds.get(guild_id)
        if guild is None or self.fake.bot_user_id not in guild.members:
            raise ApiError(403, 50001, "Missing Access")
        return guild_id

    def _stored_command(
        self, scope: int | None, command: dict[str, Any], previous: list[dict[str, Any]]
    ) -> dict[str, Any]:
        kind = command.get("type", 1)
        same = next((c for c in previous if c["name"] == command["name"] and c.get("type", 1) == kind), None)
        stored = {
            "id": same["id"] if same else str(self.world.snowflake()),
            "application_id": str(self.fake.application_id),
            "version": str(self.world.snowflake()),
            "type": kind,
            "name": command["name"],
            "description": command.get("description", ""),
            "options": command.get("options") or [],
            # Discord answers permission bitfields as strings, whatever the request used.
            "default_member_permissions": _opt_str(command.get("default_member_permissions")),
            "dm_permission": command.get("dm_permission", True),
            "nsfw": command.get("nsfw", False),
            "contexts": command.get("contexts"),
            "integration_types": command.get("integration_types", [0]),
            "name_localizations": command.get("name_localizations"),
            "description_localizations": command.get("description_localizations"),
        }
        if scope is not None:
            stored["guild_id"] = str(scope)
        return stored

    async def get_commands(self, request: web.Request) -> web.Response:
        return json_response(self.fake.commands.get(self._scope(request), []))

    async def put_commands(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        body, _ = await read_body(request)
        commands = body.get("_list")
        if not isinstance(commands, list):
            raise form_error("_list", "LIST_TYPE_CONVERT", "Must be an array.")
        check_commands(commands)
        previous = self.fake.commands.get(scope, [])
        stored = [self._stored_command(scope, c, previous) for c in commands]
        self.fake.commands[scope] = stored
        self.fake._changes.notify()
        return json_response(stored)

    async def post_command(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        body, _ = await read_body(request)
        check_command(body)
        previous = self.fake.commands.setdefault(scope, [])
        stored = self._stored_command(scope, body, previous)
        previous[:] = [c for c in previous if c["id"] != stored["id"]] + [stored]
        self.fake._changes.notify()
        return json_response(stored, 201)

    def _find_command(self, request: web.Request) -> tuple[int | None, dict[str, Any]]:
        scope = self._scope(request)
        for command in self.fake.commands.get(scope, []):
            if command["id"] == request.match_info["command_id"]:
                return scope, command
        raise unknown("application command", 10063)

    async def get_command(self, request: web.Request) -> web.Response:
        return json_response(self._find_command(request)[1])

    async def patch_command(self, request: web.Request) -> web.Response:
        _, command = self._find_command(request)
        body, _ = await read_body(request)
        command.update({k: v for k, v in body.items() if k not in ("id", "application_id", "guild_id")})
        check_command(command)
        return json_response(command)

    async def delete_command(self, request: web.Request) -> web.Response:
        scope, command = self._find_command(request)
        self.fake.commands[scope].remove(command)
        return web.Response(status=204)

    # ---- guilds and channels ------------------------------------------------------------

    def _channel(self, request: web.Request) -> FakeChannel:
        channel = self.world.channels.get(_int(request, "channel_id"))
        if channel is None:
            raise unknown("Channel", 10003)
        if channel.guild_id is not None:
            self._require(channel, VIEW_CHANNEL, missing_access=True)
        return channel

    def _require(self, channel: FakeChannel, permissions: int, *, missing_access: bool = False) -> None:
        if channel.guild_id is None:
            return
        guild = self.world.guilds[channel.guild_id]
        have = guild.member_permissions(self.fake.bot_user_id, channel.id)
        if have & permissions != permissions:
            if missing_access:
                raise ApiError(403, 50001, "Missing Access")
            raise ApiError(403, 50013, "Missing Permissions")

    async def get_channel(self, request: web.Request) -> web.Response:
        return json_response(self._channel(request).payload(self.world))

    def _guild(self, request: web.Request) -> Any:
        guild = self.world.guilds.get(_int(request, "guild_id"))
        if guild is None or self.fake.bot_user_id not in guild.members:
            raise unknown("Guild", 10004)
        return guild

    async def get_guild(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        data = guild.payload(include_all_members=False, bot_user_id=self.fake.bot_user_id)
        for key in (
            "members",
            "channels",
            "threads",
            "presences",
            "voice_states",
            "joined_at",
            "large",
            "member_count",
        ):
            data.pop(key, None)
        return json_response(data)

    async def get_guild_channels(self, request: web.Request) -> web.Response:
        return json_response([c.payload() for c in self._guild(request).channels.values()])

    async def get_roles(self, request: web.Request) -> web.Response:
        return json_response([r.payload() for r in self._guild(request).roles.values()])

    async def get_members(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        limit = int(request.query.get("limit", "1"))
        after = int(request.query.get("after", "0"))
        members = sorted((m for m in guild.members.values() if m.user.id > after), key=lambda m: m.user.id)
        return json_response([m.payload() for m in members[:limit]])

    async def get_member(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        member = guild.members.get(_int(request, "user_id"))
        if member is None:
            raise unknown("Member", 10007)
        return json_response(member.payload())

    # ---- messages -----------------------------------------------------------------------

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

    # ---- interactions -------------------------------------------------------------------

    async def callback(self, request: web.Request) -> web.Response:
        handle = self.fake._handles_by_id.get(_int(request, "interaction_id"))
        if handle is None:
            raise unknown("interaction", 10062)
        if request.match_info["webhook_token"] != handle.token:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        body, files = await read_body(request)
        kind = int(body.get("type", 0))
        data = body.get("data")
        assert handle.dispatched_at is not None
        delay = time.monotonic() - handle.dispatched_at
        late = delay > self.fake.interaction_deadline
        duplicate = handle.acknowledged
        callback = InteractionCallback(kind, data, delay, late, duplicate, 200, files)
        handle.callbacks.append(callback)
        try:
            if late:
                raise unknown("interaction", 10062)
            if duplicate:
                raise ApiError(400, 40060, "Interaction has already been acknowledged.")
            self._check_callback_type(handle, kind, data)
            response = self._apply_callback(handle, kind, data or {}, files)
        except ApiError as error:
            callback.status = error.status
            self.fake._changes.notify()
            raise
        self.fake._changes.notify()
        return json_response(response)

    def _check_callback_type(self, handle: InteractionHandle, kind: int, data: Any) -> None:
        allowed = {
            2: {MESSAGE, DEFERRED_MESSAGE, MODAL},
            3: {MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE, MODAL},
            4: {AUTOCOMPLETE},
            5: {MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE},
        }[handle.type]
        if kind not in allowed:
            raise ApiError(
                400,
                40043,
                f"Interaction callback type {kind} is not valid for interaction type {handle.type}",
            )
        if kind == MESSAGE:
            check_message(data or {}, has_files=False, prefix="data")
        if kind == UPDATE:
            check_message(data or {}, has_files=False, editing=True, prefix="data")
        if kind == AUTOCOMPLETE:
            check_autocomplete(data or {})
        if kind == MODAL:
            check_modal(data or {})

    def _apply_callback(
        self, handle: InteractionHandle, kind: int, data: dict[str, Any], files: list[StoredFile]
    ) -> dict[str, Any]:
        interaction: dict[str, Any] = {"id": str(handle.id), "type": handle.type}
        response: dict[str, Any] = {"interaction": interaction}
        channel = self.world.channel(int(handle.payload["channel_id"]))
        if kind in (MESSAGE, DEFERRED_MESSAGE):
            body = data if kind == MESSAGE else {"flags": (data.get("flags") or 0) | LOADING}
            message = self._interaction_message(handle, channel, body, files if kind == MESSAGE else [])
            handle.original_message_id = message.id
            interaction |= {
                "response_message_id": str(message.id),
                "response_message_loading": kind == DEFERRED_MESSAGE,
                "response_message_ephemeral": bool(message.flags & EPHEMERAL),
            }
            self.fake._record_bot_message(
                message,
                allowed_mentions=data.get("allowed_mentions"),
                message_reference=None,
                files=files,
                via="interaction_response" if kind == MESSAGE else "deferred_response",
                interaction_id=handle.id,
                request=data,
            )
            if not message.flags & EPHEMERAL:
                self.fake._dispatch_message("MESSAGE_CREATE", message)
            response["resource"] = {"type": kind, "message": self.world.message_payload(message)}
        elif kind in (DEFERRED_UPDATE, UPDATE):
            target = (
                self.world.messages[int(handle.payload["message"]["id"])]
                if "message" in handle.payload
                else None
            )
            if target is None:
                raise ApiError(400, 40043, "This interaction has no message to update")
            handle.original_message_id = target.id
            if kind == UPDATE:
                self._apply_edit(channel, target, data, files, via="interaction_update")
                response["resource"] = {"type": kind, "message": self.world.message_payload(target)}
        return response

    def _interaction_message(
        self, handle: InteractionHandle, channel: FakeChannel, body: dict[str, Any], files: list[StoredFile]
    ) -> FakeMessage:
        message = self._new_message(channel, body, files, author_id=self.fake.bot_user_id)
        message.flags = int(body.get("flags") or 0) & (EPHEMERAL | LOADING | (1 << 2) | (1 << 12) | (1 << 15))
        message.webhook_id = self.fake.application_id
        message.application_id = self.fake.application_id
        data = handle.payload.get("data", {})
        message.type = {2: 20 if data.get("type", 1) == 1 else 23}.get(handle.type, 0)
        user = handle.payload["member"]["user"] if "member" in handle.payload else handle.payload["user"]
        message.interaction_metadata = {
            "id": str(handle.id),
            "type": handle.type,
            "user": user,
            "authorizing_integration_owners": handle.payload["authorizing_integration_owners"],
        }
        if handle.type == 2:
            message.interaction_metadata["name"] = data.get("name")
        return message

    def _webhook_handle(self, request: web.Request) -> InteractionHandle:
        if _int(request, "webhook_id") != self.fake.application_id:
            raise unknown("Webhook", 10015)
        handle = self.fake._handles_by_token.get(request.match_info["webhook_token"])
        if handle is None or not handle.acknowledged:
            raise unknown("Webhook", 10015)
        return handle

    def _webhook_message(self, request: web.Request, handle: InteractionHandle) -> FakeMessage:
        raw = request.match_info["message_id"]
        message_id = handle.original_message_id if raw == "@original" else int(raw)
        if message_id is None:
            raise unknown("Message", 10008)
        if (
            raw != "@original"
            and message_id not in handle.followup_ids
            and message_id != handle.original_message_id
        ):
            raise unknown("Message", 10008)
        message = self.world.messages.get(message_id)
        if message is None or message.deleted:
            raise unknown("Message", 10008)
        return message

    async def followup(self, request: web.Request) -> web.Response:
        handle = self._webhook_handle(request)
        body, files = await read_body(request)
        check_message(body, has_files=bool(files))
        channel = self.world.channel(int(handle.payload["channel_id"]))
        original = self.world.messages.get(handle.original_message_id or 0)
        if original is not None and original.flags & LOADING and original.author_id == self.fake.bot_user_id:
            # The first followup after a "thinking" defer replaces the loading message.
            original.flags &= ~LOADING
            self._apply_edit(channel, original, body, files, via="webhook")
            handle.followup_ids.append(original.id)
            return json_response(self.world.message_payload(original))
        message = self._interaction_message(handle, channel, body, files)
        handle.followup_ids.append(message.id)
        self.fake._record_bot_message(
            message,
            allowed_mentions=body.get("allowed_mentions"),
            message_reference=None,
            files=files,
            via="followup",
            interaction_id=handle.id,
            request=body,
        )
        if not message.flags & EPHEMERAL:
            self.fake._dispatch_message("MESSAGE_CREATE", message)
        return json_response(self.world.message_payload(message))

    async def get_webhook_message(self, request: web.Request) -> web.Response:
        handle = self._webhook_handle(request)
        return json_response(self.world.message_payload(self._webhook_message(request, handle)))

    async def edit_webhook_message(self, request: web.Request) -> web.Response:
        handle = self._webhook_handle(request)
        message = self._webhook_message(request, handle)
        body, files = await read_body(request)
        channel = self.world.channel(message.channel_id)
        self._apply_edit(channel, message, body, files, via="webhook")
        if message.flags & LOADING:
            message.flags &= ~LOADING
            recorded = self.fake._recorded_by_id.get(message.id)
            if recorded is not None:
                recorded.flags = message.flags
            self.fake._changes.notify()
        return json_response(self.world.message_payload(message))

    async def delete_webhook_message(self, request: web.Request) -> web.Response:
        handle = self._webhook_handle(request)
        message = self._webhook_message(request, handle)
        self.fake.deleted_message_ids.append(message.id)
        self.fake.delete_message(message.channel_id, message.id)
        return web.Response(status=204)

    # ---- files --------------------------------------------------------------------------

    async def serve(self, request: web.Request) -> web.Response:
        stored = self.world.files.get(request.match_info["file_id"])
        if stored is None:
            return web.Response(status=404, text="Not found")
        return web.Response(body=stored.data, headers={"Content-Type": stored.content_type})


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise form_error(
            name, "NUMBER_TYPE_COERCE", f"Value {request.match_info[name]!r} is not snowflake."
        ) from None


def _check_auth(fake: FakeDiscord, request: web.Request) -> None:
    if any(marker in request.path for marker in NO_AUTH):
        return
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bot ") or not fake._token_accepted(header[4:]):
        raise ApiError(401, 0, "401: Unauthorized")
    fake._record_token(header[4:])


def _take_forced(fake: FakeDiscord, request: web.Request) -> tuple[float, bool] | None:
    for forced in fake.forced_rate_limits:
        if forced.remaining <= 0:
            continue
        if forced.method is not None and forced.method.upper() != request.method:
            continue
        if forced.path_contains is not None and forced.path_contains not in request.path:
            continue
        forced.remaining -= 1
        return forced.retry_after, forced.is_global
    return None


def _request_record(request: web.Request, status: int) -> RequestRecord:
    return RequestRecord(request.method, request.path, status, time.monotonic())


def _record(
    fake: FakeDiscord, request: web.Request, response: web.StreamResponse, *, rate_limited: bool = False
) -> web.StreamResponse:
    record = _request_record(request, response.status)
    fake.requests.append(record)
    if rate_limited:
        fake.rate_limited.append(record)
        fake._changes.notify()
    return response
