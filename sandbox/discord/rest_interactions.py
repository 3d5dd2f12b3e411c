"""REST interactions: the interaction callback (its deadline, duplicate and type checks) and the
webhook endpoints for followups and the original response."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from sandbox.discord.entities import EPHEMERAL, LOADING, FakeChannel, FakeMessage, StoredFile
from sandbox.discord.http_util import ApiError, json_response, read_body, unknown
from sandbox.discord.records import InteractionCallback, InteractionHandle
from sandbox.discord.rest_base import _int
from sandbox.discord.rest_messages import MessageRoutes
from sandbox.discord.validation import check_autocomplete, check_message, check_modal

# Callback types.
PONG, MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE, AUTOCOMPLETE, MODAL = 1, 4, 5, 6, 7, 8, 9


class InteractionRoutes(MessageRoutes):
    """The /interactions/{id}/{token}/callback and /webhooks/{app_id}/{token} handlers of RestApi."""

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
