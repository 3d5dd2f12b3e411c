"""The corrections cog's per-reply locks (`bot.keyed_locks`) last only while a reply is being edited."""

from __future__ import annotations

import asyncio

from bot.keyed_locks import KeyedLocks


async def test_a_lock_per_key_only_while_in_use() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def edit(key: int, name: str) -> None:
        async with locks(key):
            order.append(f"{name} in")
            await asyncio.sleep(0)  # let the other edit of the same reply try to enter
            order.append(f"{name} out")

    await asyncio.gather(edit(1, "a"), edit(1, "b"), edit(2, "c"))
    assert order.index("a out") < order.index("b in")  # one reply: one edit at a time
    assert order.index("c in") < order.index("a out")  # another reply does not wait
    assert len(locks) == 0
    for key in range(10_000):
        async with locks(key):
            pass
    assert len(locks) == 0
