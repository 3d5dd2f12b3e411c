"""Static DNS overrides for aiohttp: the sandbox's image URLs keep their real host names
(`http://i.redd.it:PORT/x.jpg`) and this resolver sends those names to 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from aiohttp import ClientSession, TCPConnector
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


class StaticResolver(AbstractResolver):
    """Answers from `hosts` (name -> IPv4 address) and asks the default resolver for the rest."""

    def __init__(self, hosts: Mapping[str, str], fallback: AbstractResolver | None = None) -> None:
        self._hosts = {name.lower(): address for name, address in hosts.items()}
        self._fallback = fallback or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self._hosts.get(host.lower().rstrip("."))
        if address is None:
            return await self._fallback.resolve(host, port, family)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        await self._fallback.close()


def session_with_hosts(hosts: Mapping[str, str], **kwargs: Any) -> ClientSession:
    """An aiohttp session whose connector resolves `hosts` statically (call inside a running loop)."""
    return ClientSession(connector=TCPConnector(resolver=StaticResolver(hosts)), **kwargs)
