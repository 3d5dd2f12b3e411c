"""A fake Reddit (and imgur) API on 127.0.0.1 that the real asyncpraw talks to, and a scripted
world of synthetic characters whose expected scrape results are known exactly."""

from sandbox.reddit.expected import Expected, ExpectedImage
from sandbox.reddit.pictures import default_hostile_cases
from sandbox.reddit.resolver import StaticResolver, session_with_hosts
from sandbox.reddit.scripted import build_world
from sandbox.reddit.server import FakeReddit, LoggedRequest
from sandbox.reddit.world import World

__all__ = [
    "Expected",
    "ExpectedImage",
    "FakeReddit",
    "LoggedRequest",
    "StaticResolver",
    "World",
    "build_world",
    "default_hostile_cases",
    "session_with_hosts",
]
