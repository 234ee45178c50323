"""`Core`'s per-token locks (`_KeyedLocks`): one holder per key, waiters in turn, nothing kept after."""

from __future__ import annotations

import asyncio

from hitl_streams.server.core import _KeyedLocks


async def test_one_holder_per_key_and_nothing_left_once_released() -> None:
    locks = _KeyedLocks()
    order: list[str] = []

    async def hold(name: str, key: str) -> None:
        async with locks.hold(key):
            order.append(f"{name} in")
            await asyncio.sleep(0.01)
            order.append(f"{name} out")

    await asyncio.gather(hold("a", "t1"), hold("b", "t1"), hold("c", "t2"))
    assert order.index("a out") < order.index("b in")  # one token: one at a time
    assert order.index("c in") < order.index("a out")  # another token: no waiting
    assert locks._locks == {}


async def test_a_cancelled_waiter_leaves_no_trace() -> None:
    locks = _KeyedLocks()
    held = locks.hold("t")
    await held.__aenter__()
    waiter = asyncio.create_task(locks.hold("t").__aenter__())
    await asyncio.sleep(0)
    assert locks._locks["t"][1] == 2
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert locks._locks["t"][1] == 1
    await held.__aexit__(None, None, None)
    assert locks._locks == {}
    async with locks.hold("t"):  # free again
        pass
