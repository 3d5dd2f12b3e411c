"""What the fake records about the bot, and how tests wait on it without sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sandbox.discord.entities import EPHEMERAL, LOADING, StoredFile

if TYPE_CHECKING:
    from sandbox.discord.server import FakeDiscord

T = TypeVar("T")


class Changes:
    """A level-triggered 'something was recorded' signal: waiters re-check their predicate."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_for(self, probe: Callable[[], T | None], timeout: float, what: str) -> T:
        deadline = time.monotonic() + timeout
        while True:
            found = probe()
            if found is not None:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"fake Discord: timed out after {timeout:.1f}s waiting for {what}")
            event = self._event
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                continue


@dataclass
class RecordedEdit:
    message_id: int
    channel_id: int
    changes: dict[str, Any]
    at: float
    via: str  # "channel", "interaction_update", "webhook"


@dataclass
class RecordedMessage:
    """A message the bot created, kept current through its edits."""

    id: int
    channel_id: int
    guild_id: int | None
    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    allowed_mentions: dict[str, Any] | None
    message_reference: dict[str, Any] | None
    flags: int
    files: list[StoredFile]
    via: str  # "channel", "interaction_response", "deferred_response", "followup"
    interaction_id: int | None
    created_at: float
    request: dict[str, Any]
    edits: list[RecordedEdit] = field(default_factory=list)
    deleted: bool = False

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & LOADING)

    @property
    def reply_to(self) -> int | None:
        if self.message_reference is None or "message_id" not in self.message_reference:
            return None
        return int(self.message_reference["message_id"])

    def custom_ids(self) -> list[str]:
        """Every custom_id in the components, depth first (action rows, sections, containers)."""
        return [c["custom_id"] for c in walk_components(self.components) if "custom_id" in c]

    def text(self) -> str:
        """Content plus embed titles, descriptions and fields: handy for assertions."""
        parts = [self.content]
        for embed in self.embeds:
            parts += [embed.get("title", ""), embed.get("description", "")]
            for f in embed.get("fields", []):
                parts += [f.get("name", ""), f.get("value", "")]
            parts.append(embed.get("footer", {}).get("text", ""))
        return "\n".join(p for p in parts if p)


def walk_components(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for component in components:
        found.append(component)
        found += walk_components(component.get("components", []))
        for key in ("accessory", "component"):
            if isinstance(component.get(key), dict):
                found += walk_components([component[key]])
    return found


@dataclass
class InteractionCallback:
    """One callback the bot posted for an interaction, accepted or not."""

    type: int
    data: dict[str, Any] | None
    delay: float  # seconds from INTERACTION_CREATE dispatch to the callback
    late: bool  # after the acknowledgement deadline (Discord answers 10062 Unknown interaction)
    duplicate: bool  # the interaction was already acknowledged (Discord answers 40060)
    status: int
    files: list[StoredFile] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.status == 200


@dataclass
class RequestRecord:
    method: str
    path: str
    status: int
    at: float


@dataclass
class ForcedRateLimit:
    method: str | None
    path_contains: str | None
    retry_after: float
    remaining: int
    is_global: bool


@dataclass
class HeartbeatRecord:
    session_id: str | None
    connection: int
    at: float  # time.monotonic()
    sequence: int | None


@dataclass
class ResumeRecord:
    session_id: str
    from_sequence: int | None
    replayed: int
    path: str


class InteractionHandle:
    """A test's view of one interaction it caused (slash, click, choose, modal, autocomplete)."""

    def __init__(
        self, fake: FakeDiscord, *, interaction_id: int, token: str, type: int, payload: dict[str, Any]
    ) -> None:
        self._fake = fake
        self.id = interaction_id
        self.token = token
        self.type = type
        self.payload = payload
        self.channel_id = int(payload["channel_id"]) if payload.get("channel_id") else None
        self.dispatched_at: float | None = None
        self.callbacks: list[InteractionCallback] = []
        self.original_message_id: int | None = None
        self.followup_ids: list[int] = []

    @property
    def acknowledged(self) -> bool:
        return any(c.accepted for c in self.callbacks)

    @property
    def response_delay(self) -> float | None:
        """Seconds from dispatch to the first callback (accepted or not); None before one."""
        return self.callbacks[0].delay if self.callbacks else None

    async def response(self, timeout: float = 3.0) -> InteractionCallback:
        """The first callback the bot posted (check `.late` / `.accepted` for the 3-second rule)."""
        return await self._fake._changes.wait_for(
            lambda: self.callbacks[0] if self.callbacks else None,
            timeout,
            f"a callback to interaction {self.id} ({self.describe()})",
        )

    def original_message(self) -> RecordedMessage | None:
        if self.original_message_id is None:
            return None
        return self._fake._recorded_by_id.get(self.original_message_id)

    async def wait_original(
        self, predicate: Callable[[RecordedMessage], bool] | None = None, *, timeout: float = 10.0
    ) -> RecordedMessage:
        """The original response message once it satisfies `predicate` (default: not loading)."""
        check = predicate or (lambda m: not m.loading)

        def probe() -> RecordedMessage | None:
            message = self.original_message()
            return message if message is not None and check(message) else None

        return await self._fake._changes.wait_for(
            probe, timeout, f"the original response of {self.describe()}"
        )

    async def followups(self, n: int = 1, *, timeout: float = 10.0) -> list[RecordedMessage]:
        def probe() -> list[RecordedMessage] | None:
            if len(self.followup_ids) < n:
                return None
            return [self._fake._recorded_by_id[i] for i in self.followup_ids]

        return await self._fake._changes.wait_for(probe, timeout, f"{n} followup(s) to {self.describe()}")

    async def modal(self, timeout: float = 3.0) -> dict[str, Any]:
        """The modal the bot opened in response (callback type 9): custom_id, title, components."""
        callback = await self.response(timeout)
        if callback.type != 9 or callback.data is None:
            raise AssertionError(f"the bot answered {self.describe()} with type {callback.type}, not a modal")
        return callback.data

    def describe(self) -> str:
        data = self.payload.get("data", {})
        label = data.get("name") or data.get("custom_id") or "?"
        return f"interaction type {self.type} '{label}'"
