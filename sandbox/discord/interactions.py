"""Building INTERACTION_CREATE `data` the way the Discord client would, from what the bot synced/sent.

The harness refuses what a real Discord client cannot do (an unsynced command, an unknown option,
a button that is not on the message, a value not in a select, a missing required modal field),
so a test cannot pass by sending the bot something Discord never would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.discord.entities import FakeMessage, StoredFile
from sandbox.discord.records import InteractionHandle, walk_components

if TYPE_CHECKING:
    from sandbox.discord.server import FakeDiscord

SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = 3, 4, 5, 6, 7, 8, 9, 10, 11


def usable_in(synced: dict[str, Any], *, dm: bool) -> None:
    """The client offers a command only where its `contexts` allow (0: servers, 1: the bot's DM);
    without `contexts`, the legacy `dm_permission` decides DMs."""
    contexts = synced.get("contexts")
    if contexts is None:
        allowed = (not dm) or synced.get("dm_permission", True) is not False
    else:
        allowed = (1 if dm else 0) in contexts
    if not allowed:
        where = "a DM with the bot" if dm else "a server"
        raise ValueError(f"{synced['name']!r} is not offered in {where} (contexts {contexts})")


def chat_input_data(
    fake: FakeDiscord,
    guild_id: int | None,
    channel_id: int,
    command: str,
    options: dict[str, Any],
    *,
    focused: str | None,
) -> dict[str, Any]:
    """`guild_id` None: in the member's DM with the bot."""
    path = command.split()
    synced = fake.registered_command(path[0], guild_id=guild_id, type=1)
    usable_in(synced, dm=guild_id is None)
    resolved: dict[str, dict[str, Any]] = {}
    schema_options: list[dict[str, Any]] = synced.get("options") or []
    leaf: list[dict[str, Any]] = []
    top: list[dict[str, Any]] = leaf
    for name in path[1:]:
        schema = _option_schema(schema_options, name, command)
        if schema["type"] not in (SUB_COMMAND, SUB_COMMAND_GROUP):
            raise ValueError(f"{name!r} in {command!r} is an option, not a subcommand")
        nested: list[dict[str, Any]] = []
        leaf.append({"name": name, "type": schema["type"], "options": nested})
        leaf = nested
        schema_options = schema.get("options") or []
    if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in schema_options):
        subs = [o["name"] for o in schema_options]
        raise ValueError(f"{command!r} is a group: name a subcommand, one of {subs}")
    for name, value in options.items():
        schema = _option_schema(schema_options, name, command)
        if name == focused:
            leaf.append({"name": name, "type": schema["type"], "value": str(value), "focused": True})
            continue
        leaf.append(
            {
                "name": name,
                "type": schema["type"],
                "value": _option_value(fake, guild_id, channel_id, schema, value, resolved),
            }
        )
    if focused is None:
        missing = [o["name"] for o in schema_options if o.get("required") and o["name"] not in options]
        if missing:
            raise ValueError(f"{command!r} needs the required option(s) {missing}")
    elif focused not in options:
        raise ValueError(f"the focused option {focused!r} must be among the options given")
    data: dict[str, Any] = {"id": synced["id"], "name": path[0], "type": 1, "options": top}
    if synced.get("guild_id"):
        data["guild_id"] = synced["guild_id"]
    if resolved:
        data["resolved"] = resolved
    return data


def _option_schema(options: list[dict[str, Any]], name: str, command: str) -> dict[str, Any]:
    for option in options:
        if option["name"] == name:
            return option
    raise ValueError(f"{command!r} has no option {name!r}; it has {[o['name'] for o in options]}")


def _option_value(
    fake: FakeDiscord,
    guild_id: int | None,
    channel_id: int,
    schema: dict[str, Any],
    value: Any,
    resolved: dict[str, dict[str, Any]],
) -> Any:
    kind = schema["type"]
    if guild_id is None and kind in (ROLE, CHANNEL):
        raise ValueError(f"option {schema['name']!r}: no roles or channels to pick in a DM")
    guild = fake.guild(guild_id) if guild_id is not None else None
    if kind == STRING:
        converted: Any = str(value)
        # The client's text box stops at max_length and will not send less than min_length.
        low, high = schema.get("min_length", 0), schema.get("max_length", 6000)
        if not low <= len(converted) <= high:
            raise ValueError(
                f"option {schema['name']!r}: {len(converted)} characters, the client allows {low}..{high}"
            )
    elif kind in (INTEGER, NUMBER):
        converted = int(value) if kind == INTEGER else float(value)
        low, high = schema.get("min_value"), schema.get("max_value")
        if (low is not None and converted < low) or (high is not None and converted > high):
            raise ValueError(f"option {schema['name']!r}: {converted} is outside {low}..{high}")
    elif kind == BOOLEAN:
        converted = bool(value)
    elif kind in (USER, MENTIONABLE) and int(value) in fake.world.users:
        _resolve_user(fake, guild_id, channel_id, int(value), resolved)
        converted = str(value)
    elif kind in (ROLE, MENTIONABLE):
        assert guild is not None
        role = guild.roles.get(int(value))
        if role is None:
            raise ValueError(f"option {schema['name']!r}: {value} is not a role of guild {guild_id}")
        resolved.setdefault("roles", {})[str(role.id)] = role.payload()
        converted = str(value)
    elif kind == CHANNEL:
        assert guild is not None
        channel = guild.channel(int(value))
        resolved.setdefault("channels", {})[str(channel.id)] = {
            "id": str(channel.id),
            "name": channel.name,
            "type": channel.type,
            "permissions": str(guild.member_permissions(fake.bot_user_id, channel.id)),
            "parent_id": None,
            "flags": 0,
        }
        converted = str(value)
    elif kind == ATTACHMENT:
        if not (isinstance(value, tuple) and len(value) == 3):
            raise ValueError(f"attachment option {schema['name']!r} takes (filename, bytes, content_type)")
        attachment = fake._store_attachment(channel_id, StoredFile(*value))
        attachment["ephemeral"] = True
        resolved.setdefault("attachments", {})[attachment["id"]] = attachment
        converted = attachment["id"]
    elif kind == USER:
        raise ValueError(f"option {schema['name']!r}: {value} is not a known user")
    else:
        raise ValueError(f"option type {kind} is not supported by the fake")
    choices = schema.get("choices")
    if choices and converted not in [c["value"] for c in choices]:
        raise ValueError(f"option {schema['name']!r}: {converted!r} is not one of the choices {choices}")
    return converted


def _resolve_user(
    fake: FakeDiscord,
    guild_id: int | None,
    channel_id: int,
    user_id: int,
    resolved: dict[str, dict[str, Any]],
) -> None:
    resolved.setdefault("users", {})[str(user_id)] = fake.world.user(user_id).payload()
    if guild_id is None:
        return
    guild = fake.guild(guild_id)
    if user_id in guild.members:
        member = guild.members[user_id]
        resolved.setdefault("members", {})[str(user_id)] = member.payload(
            with_user=False, permissions=guild.member_permissions(user_id, channel_id)
        )


def context_menu_data(
    fake: FakeDiscord,
    guild_id: int,
    channel_id: int,
    name: str,
    target_message_id: int | None,
    target_user_id: int | None,
) -> dict[str, Any]:
    if (target_message_id is None) == (target_user_id is None):
        raise ValueError("give exactly one of target_message_id or target_user_id")
    kind = 3 if target_message_id is not None else 2
    synced = fake.registered_command(name, guild_id=guild_id, type=kind)
    usable_in(synced, dm=False)
    resolved: dict[str, dict[str, Any]] = {}
    if target_message_id is not None:
        message = fake._message(target_message_id)
        # Message context-menu targets always carry content, whatever the intents.
        resolved["messages"] = {str(message.id): fake.world.message_payload(message)}
        target = target_message_id
    else:
        assert target_user_id is not None
        _resolve_user(fake, guild_id, channel_id, target_user_id, resolved)
        target = target_user_id
    data: dict[str, Any] = {
        "id": synced["id"],
        "name": name,
        "type": kind,
        "target_id": str(target),
        "resolved": resolved,
    }
    if synced.get("guild_id"):
        data["guild_id"] = synced["guild_id"]
    return data


def find_component(
    fake: FakeDiscord, message_id: int, custom_id: str, *, kinds: tuple[int, ...]
) -> tuple[FakeMessage, dict[str, Any]]:
    message = fake._message(message_id)
    for component in walk_components(message.components):
        if component.get("custom_id") == custom_id:
            if component.get("type") not in kinds:
                raise ValueError(
                    f"{custom_id!r} on message {message_id} is component type {component.get('type')}"
                )
            if component.get("disabled"):
                raise ValueError(f"{custom_id!r} on message {message_id} is disabled: a member cannot use it")
            return message, component
    present = [c["custom_id"] for c in walk_components(message.components) if "custom_id" in c]
    raise ValueError(f"message {message_id} has no component {custom_id!r}; it has {present}")


def select_data(
    fake: FakeDiscord, message: FakeMessage, component: dict[str, Any], values: list[str]
) -> dict[str, Any]:
    kind = component["type"]
    low, high = component.get("min_values", 1), component.get("max_values", 1)
    if not low <= len(values) <= high:
        raise ValueError(f"select {component['custom_id']!r} takes {low}..{high} values, got {len(values)}")
    data: dict[str, Any] = {"custom_id": component["custom_id"], "component_type": kind, "values": values}
    if kind == 3:
        allowed = [o["value"] for o in component.get("options", [])]
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ValueError(
                f"select {component['custom_id']!r} has no option(s) {bad}; options are {allowed}"
            )
        return data
    assert message.guild_id is not None
    guild = fake.guild(message.guild_id)
    resolved: dict[str, dict[str, Any]] = {}
    for value in values:
        if kind in (5, 7) and int(value) in fake.world.users:
            _resolve_user(fake, guild.id, message.channel_id, int(value), resolved)
        elif kind in (6, 7) and int(value) in guild.roles:
            resolved.setdefault("roles", {})[value] = guild.roles[int(value)].payload()
        elif kind == 8 and int(value) in guild.channels:
            channel = guild.channels[int(value)]
            resolved.setdefault("channels", {})[value] = {
                "id": value,
                "name": channel.name,
                "type": channel.type,
                "permissions": "0",
            }
        else:
            raise ValueError(f"{value} cannot be chosen in select type {kind}")
    data["resolved"] = resolved
    return data


def find_modal(fake: FakeDiscord, custom_id: str) -> tuple[InteractionHandle, dict[str, Any]]:
    for handle in reversed(fake.interactions):
        for callback in handle.callbacks:
            if (
                callback.accepted
                and callback.type == 9
                and callback.data
                and callback.data.get("custom_id") == custom_id
            ):
                return handle, callback.data
    raise ValueError(f"the bot has not opened a modal with custom_id {custom_id!r}")


def modal_submit_data(modal: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    inputs = {c["custom_id"]: c for c in walk_components(modal.get("components", [])) if c.get("type") == 4}
    fields = {_by_label(modal, key) if key not in inputs else key: value for key, value in fields.items()}
    unknown = set(fields) - set(inputs)
    if unknown:
        raise ValueError(
            f"modal {modal['custom_id']!r} has no text input(s) {sorted(unknown)}; it has {sorted(inputs)}"
        )
    for custom_id, text_input in inputs.items():
        value = fields.get(custom_id, text_input.get("value") or "")
        if text_input.get("required", True) and not value:
            raise ValueError(f"modal field {custom_id!r} is required")
        if value and not text_input.get("min_length", 0) <= len(value) <= text_input.get("max_length", 4000):
            raise ValueError(f"modal field {custom_id!r}: length {len(value)} is outside its limits")

    def answer(component: dict[str, Any]) -> dict[str, Any] | None:
        kind = component.get("type")
        if kind == 4:
            value = fields.get(component["custom_id"], component.get("value") or "")
            return {"type": 4, "custom_id": component["custom_id"], "value": value, **_id(component)}
        if kind == 1:
            children = [a for a in (answer(c) for c in component.get("components", [])) if a is not None]
            return {"type": 1, "components": children, **_id(component)}
        if kind == 18:
            inner = answer(component["component"])
            return None if inner is None else {"type": 18, "component": inner, **_id(component)}
        return None

    answered = [a for a in (answer(c) for c in modal.get("components", [])) if a is not None]
    return {"custom_id": modal["custom_id"], "components": answered}


def _by_label(modal: dict[str, Any], label: str) -> str:
    """A field may be named by its label: TextInput labels, or Label (type 18) wrappers."""
    for component in walk_components(modal.get("components", [])):
        if component.get("type") == 4 and component.get("label") == label:
            return component["custom_id"]
        if component.get("type") == 18 and component.get("label") == label:
            inner = component.get("component", {})
            if inner.get("type") == 4:
                return inner["custom_id"]
    return label


def _id(component: dict[str, Any]) -> dict[str, Any]:
    return {"id": component["id"]} if "id" in component else {}
