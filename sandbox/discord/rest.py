"""The REST API under /api/v{n}: the routes, the middleware around them (auth, rate limits, request
records, Discord's error shapes), and what discord.py calls at login, for guilds and for files.

Application commands live in rest_commands.py, messages in rest_messages.py, interaction callbacks
and webhooks in rest_interactions.py; rest_base.py holds what they share.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sandbox.discord.http_util import ApiError, json_response, read_body, too_many_requests, unknown
from sandbox.discord.records import RequestRecord
from sandbox.discord.rest_base import _int
from sandbox.discord.rest_commands import CommandRoutes
from sandbox.discord.rest_interactions import InteractionRoutes

if TYPE_CHECKING:
    from sandbox.discord.server import FakeDiscord

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API = "/api/v{version:\\d+}"
NO_AUTH = ("/interactions/", "/webhooks/")
MAJOR_PARAMETERS = ("channel_id", "guild_id", "webhook_id", "webhook_token", "interaction_id")


class RestApi(CommandRoutes, InteractionRoutes):
    """Every route of the fake's REST API; the resource handlers come from the mixins."""

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

    # ---- guilds and channels ------------------------------------------------------------

    async def get_channel(self, request: web.Request) -> web.Response:
        return json_response(self._channel(request).payload(self.world))

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

    # ---- files --------------------------------------------------------------------------

    async def serve(self, request: web.Request) -> web.Response:
        stored = self.world.files.get(request.match_info["file_id"])
        if stored is None:
            return web.Response(status=404, text="Not found")
        return web.Response(body=stored.data, headers={"Content-Type": stored.content_type})


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
