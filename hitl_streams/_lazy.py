"""`Deferred`: an awaitable that starts its coroutine only when awaited.

Engine suspensions are handed out before the request is created and may never be awaited (a `Pending`
waited on through another client object); a bare coroutine would then be reported as never awaited.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Generator
from typing import Any, Generic, TypeVar

__all__ = ["Deferred"]

T = TypeVar("T")


class Deferred(Generic[T]):
    """`await Deferred(fn)` runs `await fn()`, once per await."""

    __slots__ = ("_start",)

    def __init__(self, start: Callable[[], Coroutine[Any, Any, T]]) -> None:
        self._start = start

    def __await__(self) -> Generator[Any, None, T]:
        return self._start().__await__()
