"""A fake Discord (REST + gateway on one loopback port) that unmodified discord.py talks to."""

from sandbox.discord.guild import FakeGuild
from sandbox.discord.records import (
    HeartbeatRecord,
    InteractionCallback,
    InteractionHandle,
    RecordedEdit,
    RecordedMessage,
    ResumeRecord,
)
from sandbox.discord.server import FakeDiscord

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
