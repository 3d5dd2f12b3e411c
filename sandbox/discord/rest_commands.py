"""REST application commands: list, bulk overwrite, create, fetch, edit and delete, globally and per
guild, checked against Discord's limits (validation.py) and stored as Discord answers them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sandbox.discord.http_util import ApiError, form_error, json_response, read_body, unknown
from sandbox.discord.rest_base import RestBase, _int
from sandbox.discord.validation import check_command, check_commands


class CommandRoutes(RestBase):
    """The /applications/{app_id}[/guilds/{guild_id}]/commands handlers of RestApi."""

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


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
