"""`hitl-streams serve --workers N`: N uvicorn processes on one listening socket, each a replica.

The parent checks everything and prints the banner (`serve.py`), then uvicorn's supervisor starts the
workers (and starts again one that dies). Each worker builds its own `Hitl` at lifespan startup, from the
same options, on the same Redis: the design's replicas, sharing nothing but Redis. A decision is resumed
once (the resume stream's consumer group, one consumer per worker), a due schedule fires once (its lease),
a create is delivered once (the delivery lease). Only worth it when the server has cores to spare: on
two cores shared with Redis, two workers cost more CPU per request than one (see the README).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .hitl import Hitl
from .serve import ServeOptions, served_hitl, settle_gc, uvicorn_config

__all__ = ["WorkerApp", "serve_workers"]

Message = MutableMapping[str, Any]


class WorkerApp:
    """The ASGI app each worker serves: it builds the worker's `Hitl` when the lifespan starts (it is
    pickled into a fresh process, so it holds only the options)."""

    def __init__(self, options: ServeOptions, redis_url: str | None) -> None:
        self.options = options
        self.redis_url = redis_url
        self._hitl: Hitl | None = None

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Message]], send: Any
    ) -> None:
        if scope["type"] != "lifespan":
            if self._hitl is None:  # uvicorn serves only after the lifespan started
                raise RuntimeError("the worker's Hitl is not started")
            await self._hitl.asgi(scope, receive, send)
            return
        await receive()  # lifespan.startup
        async with contextlib.AsyncExitStack() as stack:
            try:
                hitl = await stack.enter_async_context(served_hitl(self.options, self.redis_url))
                await hitl.start()
                stack.push_async_callback(hitl.stop)
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                return
            self._hitl = hitl
            settle_gc()  # as `serve` does with one worker
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})


def serve_workers(options: ServeOptions, redis_url: str | None) -> None:
    """Serve with `options.workers` processes until Ctrl-C (or SIGTERM), which stops them all."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn_config(options, WorkerApp(options, redis_url), workers=options.workers)
    listening = config.bind_socket()
    # uvicorn before 0.36 takes the worker's target; later ones make it themselves.
    takes_target = "target" in inspect.signature(Multiprocess).parameters
    extra: dict[str, Any] = {"target": uvicorn.Server(config).run} if takes_target else {}
    try:
        Multiprocess(config, sockets=[listening], **extra).run()
    finally:
        listening.close()
