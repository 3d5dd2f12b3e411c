"""The documented limits Discord enforces on what a bot sends (messages, components, commands)."""

from __future__ import annotations

import re
from typing import Any

from sandbox.discord.http_util import ApiError, form_error

COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")
MAX_EMBED_TOTAL = 6000


def check_message(payload: dict[str, Any], *, has_files: bool, editing: bool = False) -> None:
    content = payload.get("content")
    if content is not None and len(str(content)) > 2000:
        raise form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
    embeds = payload.get("embeds") or []
    if len(embeds) > 10:
        raise form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    total = 0
    for i, embed in enumerate(embeds):
        total += _check_embed(embed, f"embeds.{i}")
    if total > MAX_EMBED_TOTAL:
        raise ApiError(
            400,
            50035,
            "Invalid Form Body",
            {
                "embeds": {
                    "_errors": [
                        {
                            "code": "MAX_EMBED_SIZE_EXCEEDED",
                            "message": "Embed size exceeds maximum size of 6000",
                        }
                    ]
                }
            },
        )
    check_components(payload.get("components") or [], modal=False)
    if not editing and not (
        content
        or embeds
        or has_files
        or payload.get("components")
        or payload.get("sticker_ids")
        or payload.get("poll")
    ):
        raise ApiError(400, 50006, "Cannot send an empty message")


def _check_embed(embed: dict[str, Any], path: str) -> int:
    limits = {"title": 256, "description": 4096}
    size = 0
    for key, limit in limits.items():
        value = embed.get(key) or ""
        if len(value) > limit:
            raise form_error(f"{path}.{key}", "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
        size += len(value)
    fields = embed.get("fields") or []
    if len(fields) > 25:
        raise form_error(f"{path}.fields", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    for j, field in enumerate(fields):
        name, value = str(field.get("name", "")), str(field.get("value", ""))
        if not name or not value:
            raise form_error(f"{path}.fields.{j}", "BASE_TYPE_REQUIRED", "This field is required")
        if len(name) > 256 or len(value) > 1024:
            raise form_error(f"{path}.fields.{j}", "BASE_TYPE_MAX_LENGTH", "Field name/value too long.")
        size += len(name) + len(value)
    footer = (embed.get("footer") or {}).get("text") or ""
    author = (embed.get("author") or {}).get("name") or ""
    if len(footer) > 2048 or len(author) > 256:
        raise form_error(f"{path}.footer", "BASE_TYPE_MAX_LENGTH", "Footer or author too long.")
    return size + len(footer) + len(author)


def check_components(components: list[dict[str, Any]], *, modal: bool) -> None:
    seen: set[str] = set()
    top_level_rows = [c for c in components if c.get("type") == 1]
    if len(top_level_rows) > 5:
        raise form_error("components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
    _walk(components, "components", seen, modal=modal)


def _walk(components: list[dict[str, Any]], path: str, seen: set[str], *, modal: bool) -> None:
    for i, component in enumerate(components):
        here = f"{path}.{i}"
        kind = component.get("type")
        custom_id = component.get("custom_id")
        if custom_id is not None:
            if not 1 <= len(custom_id) <= 100:
                raise form_error(
                    f"{here}.custom_id", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
                )
            if custom_id in seen:
                raise form_error(
                    f"{here}.custom_id",
                    "COMPONENT_CUSTOM_ID_DUPLICATED",
                    "Component custom id cannot be duplicated",
                )
            seen.add(custom_id)
        if kind == 1:
            children = component.get("components") or []
            if len(children) > 5:
                raise form_error(
                    f"{here}.components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length."
                )
            if any(c.get("type") in (3, 5, 6, 7, 8) for c in children) and len(children) > 1:
                raise form_error(
                    f"{here}.components",
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "The specified component exceeds the maximum width",
                )
        if kind == 2:
            if len(component.get("label") or "") > 80:
                raise form_error(f"{here}.label", "BASE_TYPE_MAX_LENGTH", "Must be 80 or fewer in length.")
            is_link = component.get("style") == 5
            if is_link == (custom_id is not None) and component.get("style") != 6:
                raise form_error(
                    f"{here}", "BUTTON_COMPONENT_INVALID", "A button needs exactly one of custom_id or url"
                )
        if kind == 3:
            options = component.get("options") or []
            if not 1 <= len(options) <= 25:
                raise form_error(
                    f"{here}.options", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 25 in length."
                )
        if kind == 4 and not modal:
            raise form_error(here, "COMPONENT_TYPE_INVALID", "Text inputs are only valid in modals")
        _walk(component.get("components") or [], f"{here}.components", seen, modal=modal)
        for key in ("accessory", "component"):
            if isinstance(component.get(key), dict):
                _walk([component[key]], f"{here}.{key}", seen, modal=modal)


def check_command(command: dict[str, Any], path: str) -> None:
    kind = command.get("type", 1)
    name = command.get("name") or ""
    if kind == 1:
        if not COMMAND_NAME.match(name) or name != name.lower():
            raise form_error(
                f"{path}.name", "APPLICATION_COMMAND_INVALID_NAME", f"Command name is invalid: {name!r}"
            )
        description = command.get("description") or ""
        if not 1 <= len(description) <= 100:
            raise form_error(
                f"{path}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        _check_options(command.get("options") or [], f"{path}.options")
    elif not 1 <= len(name) <= 32:
        raise form_error(f"{path}.name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")


def _check_options(options: list[dict[str, Any]], path: str) -> None:
    if len(options) > 25:
        raise form_error(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    seen_optional = False
    for i, option in enumerate(options):
        here = f"{path}.{i}"
        name = option.get("name") or ""
        if not COMMAND_NAME.match(name) or name != name.lower():
            raise form_error(
                f"{here}.name", "APPLICATION_COMMAND_INVALID_NAME", f"Option name is invalid: {name!r}"
            )
        if not 1 <= len(option.get("description") or "") <= 100:
            raise form_error(
                f"{here}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        if option.get("type") in (1, 2):
            _check_options(option.get("options") or [], f"{here}.options")
            continue
        if option.get("required"):
            if seen_optional:
                raise form_error(
                    here,
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            seen_optional = True
        if len(option.get("choices") or []) > 25:
            raise form_error(f"{here}.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        if option.get("choices") and option.get("autocomplete"):
            raise form_error(
                here,
                "APPLICATION_COMMAND_OPTION_CHOICES_AUTOCOMPLETE",
                "Autocomplete cannot be set with choices",
            )
