"""Which resolver `hitl-streams serve` resumes workflows with: a webhook, Temporal or DBOS, one at most.

The engine resolvers live behind their extras (`temporal`, `dbos`) and are imported only when chosen;
a missing extra or an unreachable engine stops `serve` with a one-line error, before it listens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import HitlError
from .resolvers import Resolver

if TYPE_CHECKING:
    from .serve import ServeOptions

__all__ = ["check_one_resolver", "open_engine_resolver"]


def check_one_resolver(options: ServeOptions) -> None:
    """`SystemExit` with a one-line message when more than one resolver is chosen."""
    chosen = [
        flag
        for flag, value in (
            ("--webhook-url", options.webhook_url),
            ("--temporal-address", options.temporal_address),
            ("--dbos-database-url", options.dbos_database_url),
        )
        if value
    ]
    if len(chosen) > 1:
        raise SystemExit(f"choose one resolver: {' and '.join(chosen)} were both given (pass only one)")


async def open_engine_resolver(options: ServeOptions) -> Resolver | None:
    """The Temporal or DBOS resolver the options ask for, connected; `None` when they ask for neither."""
    try:
        if options.temporal_address:
            from ..temporal import TemporalResolver

            try:
                return await TemporalResolver.connect(options.temporal_address, namespace=options.temporal_namespace)
            except HitlError as error:
                raise SystemExit(str(error)) from None
            except Exception as error:  # temporalio reports a failed connection as a RuntimeError
                first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise SystemExit(f"cannot reach Temporal at {options.temporal_address}: {first_line}") from None
        if options.dbos_database_url:
            from ..dbos import DBOSResolver

            resolver = DBOSResolver(options.dbos_database_url)
            try:
                await resolver.connect()
            except Exception as error:
                first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise SystemExit(f"cannot open the DBOS system database {resolver.where}: {first_line}") from None
            return resolver
    except ImportError as error:
        raise SystemExit(str(error)) from None
    return None
