"""Which posted messages the bot has decided about, and its reply to each (None: left alone).

Every message the listener sees is marked, ignored ones too, once its answer is fully recorded,
so that whoever waits on a message (the tests, the demo, the benchmarks) never races the bot's
decision. Only the most recent `KEPT` decisions are remembered.
"""

from __future__ import annotations

import asyncio

KEPT = 10_000


class AnsweredLog:
    def __init__(self) -> None:
        self.replies: dict[int, int | None] = {}
        self._changed = asyncio.Condition()

    async def mark(self, message_id: int, reply_id: int | None) -> None:
        async with self._changed:
            self.replies[message_id] = reply_id
            while len(self.replies) > KEPT:
                self.replies.pop(next(iter(self.replies)))
            self._changed.notify_all()

    async def wait(self, message_id: int, timeout: float = 30.0) -> int | None:
        """The reply id once the answer to `message_id` is recorded (None: there is no reply)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: message_id in self.replies)
            return self.replies[message_id]
