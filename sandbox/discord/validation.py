"""The documented limits Discord enforces on what a bot sends: messages (create, edit, interaction
responses and follow-ups), embeds, components, modals and application commands.

A refusal is what Discord answers: HTTP 400, JSON code 50035 "Invalid Form Body", and the path of
the offending field in `errors` (`{"embeds": {"0": {"description": {"_errors": [...]}}}}`); for an
interaction response the path starts at the callback body's `data`, for a bulk overwrite at the
command's index in the list. Limits: https://discord.com/developers/docs/resources/message,
.../interactions/message-components and .../interactions/application-commands.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.discord.http_util import ApiError, form_error

COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")
CONTENT_MAX = 2000
EMBEDS_MAX = 10
EMBED_TOTAL_MAX = 6000
EMBED_LIMITS = {"title": 256, "description": 4096}
FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
AUTHOR_MAX = 256
ROWS_MAX = 5
ROW_WIDTH = 5
CUSTOM_ID_MAX = 100
BUTTON_LABEL_MAX = 80
SELECT_OPTIONS_MAX = 25
OPTION_TEXT_MAX = 100
PLACEHOLDER_MAX = 150
MODAL_TITLE_MAX = 45
TEXT_INPUT_LABEL_MAX = 45
TEXT_INPUT_VALUE_MAX = 4000
COMMANDS_MAX = 100
CONTEXT_MENUS_MAX = 5  # per type (user, message)
COMMAND_DESCRIPTION_MAX = 100
COMMAND_OPTIONS_MAX = 25
CHOICES_MAX = 25
CHOICE_NAME_MAX = 100
CHOICE_STRING_MAX = 100
STRING_OPTION_MAX = 6000
COMMAND_TOTAL_MAX = 8000  # name, description, options' names, descriptions, values, over the tree
CONTEXTS = {0, 1, 2}  # GUILD, BOT_DM, PRIVATE_CHANNEL
INTEGRATION_TYPES = {0, 1}  # GUILD_INSTALL, USER_INSTALL


def _at(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix and path else prefix or path


def _too_long(path: str, limit: int) -> ApiError:
    return form_error(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _bad_length(path: str, low: int, high: int) -> ApiError:
    return form_error(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")


def check_message(
    payload: dict[str, Any], *, has_files: bool, editing: bool = False, prefix: str = ""
) -> None:
    """`prefix`: where the message sits in the request body ("data" in an interaction callback)."""
    content = payload.get("content")
    if content is not None and len(str(content)) > CONTENT_MAX:
        raise _too_long(_at(prefix, "content"), CONTENT_MAX)
    embeds = payload.get("embeds") or []
    if len(embeds) > EMBEDS_MAX:
        raise _too_long(_at(prefix, "embeds"), EMBEDS_MAX)
    total = sum(_check_embed(embed, _at(prefix, f"embeds.{i}")) for i, embed in enumerate(embeds))
    if total > EMBED_TOTAL_MAX:
        raise form_error(
            _at(prefix, "embeds"),
            "MAX_EMBED_SIZE_EXCEEDED",
            f"Embed size exceeds maximum size of {EMBED_TOTAL_MAX}",
        )
    check_components(payload.get("components") or [], modal=False, prefix=_at(prefix, "components"))
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
    size = 0
    for key, limit in EMBED_LIMITS.items():
        value = str(embed.get(key) or "")
        if len(value) > limit:
            raise _too_long(f"{path}.{key}", limit)
        size += len(value)
    fields = embed.get("fields") or []
    if len(fields) > FIELDS_MAX:
        raise _too_long(f"{path}.fields", FIELDS_MAX)
    for j, field in enumerate(fields):
        for key, limit in (("name", FIELD_NAME_MAX), ("value", FIELD_VALUE_MAX)):
            value = str(field.get(key) or "")
            if not value:
                raise form_error(f"{path}.fields.{j}.{key}", "BASE_TYPE_REQUIRED", "This field is required")
            if len(value) > limit:
                raise _too_long(f"{path}.fields.{j}.{key}", limit)
            size += len(value)
    footer = str((embed.get("footer") or {}).get("text") or "")
    if len(footer) > FOOTER_MAX:
        raise _too_long(f"{path}.footer.text", FOOTER_MAX)
    author = str((embed.get("author") or {}).get("name") or "")
    if len(author) > AUTHOR_MAX:
        raise _too_long(f"{path}.author.name", AUTHOR_MAX)
    return size + len(footer) + len(author)


def check_components(components: list[dict[str, Any]], *, modal: bool, prefix: str = "components") -> None:
    seen: set[str] = set()
    top_level_rows = [c for c in components if c.get("type") == 1]
    if len(top_level_rows) > ROWS_MAX:
        raise _too_long(prefix, ROWS_MAX)
    _walk(components, prefix, seen, modal=modal)


def _walk(components: list[dict[str, Any]], path: str, seen: set[str], *, modal: bool) -> None:
    for i, component in enumerate(components):
        here = f"{path}.{i}"
        kind = component.get("type")
        custom_id = component.get("custom_id")
        if custom_id is not None:
            if not 1 <= len(custom_id) <= CUSTOM_ID_MAX:
                raise _bad_length(f"{here}.custom_id", 1, CUSTOM_ID_MAX)
            if custom_id in seen:
                raise form_error(
                    f"{here}.custom_id",
                    "COMPONENT_CUSTOM_ID_DUPLICATED",
                    "Component custom id cannot be duplicated",
                )
            seen.add(custom_id)
        if kind == 1:
            children = component.get("components") or []
            if len(children) > ROW_WIDTH:
                raise _too_long(f"{here}.components", ROW_WIDTH)
            if any(c.get("type") in (3, 5, 6, 7, 8) for c in children) and len(children) > 1:
                raise form_error(
                    f"{here}.components",
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "The specified component exceeds the maximum width",
                )
        if kind == 2:
            if len(component.get("label") or "") > BUTTON_LABEL_MAX:
                raise _too_long(f"{here}.label", BUTTON_LABEL_MAX)
            is_link = component.get("style") == 5
            if is_link == (custom_id is not None) and component.get("style") != 6:
                raise form_error(
                    f"{here}", "BUTTON_COMPONENT_INVALID", "A button needs exactly one of custom_id or url"
                )
        if kind in (3, 5, 6, 7, 8):
            _check_select(component, here)
        if kind == 4:
            if not modal:
                raise form_error(here, "COMPONENT_TYPE_INVALID", "Text inputs are only valid in modals")
            _check_text_input(component, here)
        _walk(component.get("components") or [], f"{here}.components", seen, modal=modal)
        for key in ("accessory", "component"):
            if isinstance(component.get(key), dict):
                _walk([component[key]], f"{here}.{key}", seen, modal=modal)


def _check_select(component: dict[str, Any], here: str) -> None:
    if len(component.get("placeholder") or "") > PLACEHOLDER_MAX:
        raise _too_long(f"{here}.placeholder", PLACEHOLDER_MAX)
    low, high = component.get("min_values", 1), component.get("max_values", 1)
    if not 0 <= low <= SELECT_OPTIONS_MAX:
        raise form_error(
            f"{here}.min_values", "NUMBER_TYPE_MAX", f"int value should be <= {SELECT_OPTIONS_MAX}."
        )
    if not 1 <= high <= SELECT_OPTIONS_MAX:
        raise form_error(
            f"{here}.max_values", "NUMBER_TYPE_MAX", f"int value should be <= {SELECT_OPTIONS_MAX}."
        )
    if component.get("type") != 3:
        return
    options = component.get("options") or []
    if not 1 <= len(options) <= SELECT_OPTIONS_MAX:
        raise _bad_length(f"{here}.options", 1, SELECT_OPTIONS_MAX)
    if high > len(options):
        raise form_error(
            f"{here}.max_values", "BASE_TYPE_BAD_INT", "max_values cannot be more than the number of options"
        )
    values: set[str] = set()
    for j, option in enumerate(options):
        for key in ("label", "value"):
            if not 1 <= len(str(option.get(key) or "")) <= OPTION_TEXT_MAX:
                raise _bad_length(f"{here}.options.{j}.{key}", 1, OPTION_TEXT_MAX)
        if len(option.get("description") or "") > OPTION_TEXT_MAX:
            raise _too_long(f"{here}.options.{j}.description", OPTION_TEXT_MAX)
        if option["value"] in values:
            raise form_error(
                f"{here}.options.{j}.value",
                "SELECT_COMPONENT_OPTION_VALUE_DUPLICATED",
                "Duplicate option value",
            )
        values.add(option["value"])


def _check_text_input(component: dict[str, Any], here: str) -> None:
    if len(component.get("label") or "") > TEXT_INPUT_LABEL_MAX:
        raise _too_long(f"{here}.label", TEXT_INPUT_LABEL_MAX)
    for key in ("min_length", "max_length"):
        value = component.get(key)
        if value is not None and not 0 <= int(value) <= TEXT_INPUT_VALUE_MAX:
            raise form_error(
                f"{here}.{key}", "NUMBER_TYPE_MAX", f"int value should be <= {TEXT_INPUT_VALUE_MAX}."
            )
    if len(component.get("value") or "") > TEXT_INPUT_VALUE_MAX:
        raise _too_long(f"{here}.value", TEXT_INPUT_VALUE_MAX)


def check_modal(modal: dict[str, Any], prefix: str = "data") -> None:
    if not modal.get("custom_id") or not modal.get("title") or not modal.get("components"):
        raise form_error(prefix, "BASE_TYPE_REQUIRED", "A modal needs custom_id, title and components")
    if len(modal["custom_id"]) > CUSTOM_ID_MAX:
        raise _bad_length(_at(prefix, "custom_id"), 1, CUSTOM_ID_MAX)
    if len(modal["title"]) > MODAL_TITLE_MAX:
        raise _too_long(_at(prefix, "title"), MODAL_TITLE_MAX)
    check_components(modal["components"], modal=True, prefix=_at(prefix, "components"))


def check_autocomplete(data: dict[str, Any], prefix: str = "data") -> None:
    choices = data.get("choices")
    if not isinstance(choices, list) or len(choices) > CHOICES_MAX:
        raise _too_long(_at(prefix, "choices"), CHOICES_MAX)
    for i, choice in enumerate(choices):
        _check_choice(choice, _at(prefix, f"choices.{i}"))


def _check_choice(choice: dict[str, Any], path: str) -> None:
    if not 1 <= len(str(choice.get("name", ""))) <= CHOICE_NAME_MAX:
        raise _bad_length(f"{path}.name", 1, CHOICE_NAME_MAX)
    value = choice.get("value")
    if isinstance(value, str) and not 1 <= len(value) <= CHOICE_STRING_MAX:
        raise _bad_length(f"{path}.value", 1, CHOICE_STRING_MAX)


def check_commands(commands: list[dict[str, Any]]) -> None:
    """A bulk overwrite (PUT .../commands): each command, then limits across the list."""
    if len(commands) > COMMANDS_MAX:
        raise _too_long("", COMMANDS_MAX)
    seen: set[tuple[str, int]] = set()
    for i, command in enumerate(commands):
        check_command(command, str(i))
        key = (command["name"], command.get("type", 1))
        if key in seen:
            raise form_error(f"{i}.name", "APPLICATION_COMMANDS_DUPLICATE_NAME", f"Duplicate name {key[0]!r}")
        seen.add(key)
    for kind in (2, 3):
        if sum(1 for c in commands if c.get("type", 1) == kind) > CONTEXT_MENUS_MAX:
            raise form_error(
                "", "APPLICATION_COMMAND_TOO_MANY", f"Maximum of {CONTEXT_MENUS_MAX} context menus per type"
            )


def check_command(command: dict[str, Any], path: str = "") -> None:
    kind = command.get("type", 1)
    name = command.get("name") or ""
    if kind == 1:
        if not COMMAND_NAME.match(name) or name != name.lower():
            raise form_error(
                _at(path, "name"), "APPLICATION_COMMAND_INVALID_NAME", f"Command name is invalid: {name!r}"
            )
        description = command.get("description") or ""
        if not 1 <= len(description) <= COMMAND_DESCRIPTION_MAX:
            raise _bad_length(_at(path, "description"), 1, COMMAND_DESCRIPTION_MAX)
        _check_options(command.get("options") or [], _at(path, "options"))
        if _command_size(command) > COMMAND_TOTAL_MAX:
            raise form_error(
                path,
                "APPLICATION_COMMAND_TOO_LARGE",
                f"Command exceeds maximum size ({COMMAND_TOTAL_MAX})",
            )
    elif not 1 <= len(name) <= 32:
        raise _bad_length(_at(path, "name"), 1, 32)
    for key, allowed in (("contexts", CONTEXTS), ("integration_types", INTEGRATION_TYPES)):
        values = command.get(key)
        if values is None:
            continue
        if not isinstance(values, list) or not values:
            raise form_error(_at(path, key), "BASE_TYPE_BAD_LENGTH", "Must be a non-empty list")
        for j, value in enumerate(values):
            if value not in allowed:
                raise form_error(
                    _at(path, f"{key}.{j}"), "BASE_TYPE_CHOICES", f"Value must be one of {sorted(allowed)}."
                )


def _command_size(command: dict[str, Any]) -> int:
    def size(options: list[dict[str, Any]]) -> int:
        total = 0
        for option in options:
            total += len(option.get("name") or "") + len(option.get("description") or "")
            total += sum(
                len(str(c.get("name", ""))) + len(str(c.get("value", "")))
                for c in option.get("choices") or []
            )
            total += size(option.get("options") or [])
        return total

    return (
        len(command.get("name") or "")
        + len(command.get("description") or "")
        + size(command.get("options") or [])
    )


def _check_options(options: list[dict[str, Any]], path: str) -> None:
    if len(options) > COMMAND_OPTIONS_MAX:
        raise _too_long(path, COMMAND_OPTIONS_MAX)
    seen_optional = False
    names: set[str] = set()
    for i, option in enumerate(options):
        here = f"{path}.{i}"
        name = option.get("name") or ""
        if not COMMAND_NAME.match(name) or name != name.lower():
            raise form_error(
                f"{here}.name", "APPLICATION_COMMAND_INVALID_NAME", f"Option name is invalid: {name!r}"
            )
        if name in names:
            raise form_error(
                f"{here}.name", "APPLICATION_COMMAND_OPTION_NAME_ALREADY_EXISTS", "Duplicate option name"
            )
        names.add(name)
        if not 1 <= len(option.get("description") or "") <= COMMAND_DESCRIPTION_MAX:
            raise _bad_length(f"{here}.description", 1, COMMAND_DESCRIPTION_MAX)
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
        choices = option.get("choices") or []
        if len(choices) > CHOICES_MAX:
            raise _too_long(f"{here}.choices", CHOICES_MAX)
        for j, choice in enumerate(choices):
            _check_choice(choice, f"{here}.choices.{j}")
        if choices and option.get("autocomplete"):
            raise form_error(
                here,
                "APPLICATION_COMMAND_OPTION_CHOICES_AUTOCOMPLETE",
                "Autocomplete cannot be set with choices",
            )
        for key, low in (("min_length", 0), ("max_length", 1)):
            value = option.get(key)
            if value is None:
                continue
            if option.get("type") != 3:
                raise form_error(
                    f"{here}.{key}", "APPLICATION_COMMAND_OPTION_INVALID", f"{key} is for strings only"
                )
            if not low <= int(value) <= STRING_OPTION_MAX:
                raise form_error(
                    f"{here}.{key}",
                    "NUMBER_TYPE_MAX",
                    f"int value should be between {low} and {STRING_OPTION_MAX}.",
                )
