"""A fake Discord (REST + gateway on one loopback port) that unmodified discord.py talks to."""

from sandbox.discord.records import (
    HeartbeatRecord,
    InteractionCallback,
    InteractionHandle,
    RecordedEdit,
    RecordedMessage,
    ResumeRecord,
)
from sandbox.discord.server import FakeDiscord
from sandbox.discord.world import FakeGuild

__all__ = [
    "FakeDiscord",
    "FakeGuild",
    "HeartbeatRecord",
    "InteractionCallback",
    "InteractionHandle",
    "RecordedEdit",
    "RecordedMessage",
    "ResumeRecord",
]
