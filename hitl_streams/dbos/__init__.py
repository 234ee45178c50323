"""DBOS binding: a hitl client inside DBOS workflows, and the resolver that resumes them.

Workflow side: `client = dbos_hitl_client()` inside a `@DBOS.workflow()`. Server side:
`Hitl(state, resolver=DBOSResolver(system_database_url))`, from any process that reaches the DBOS
system database. Needs the `dbos` extra.
"""

from . import _require  # noqa: F401  (the actionable ImportError comes first)
from .resolver import DBOSResolver
from .token import decode_dbos_token, encode_dbos_token
from .workflow import DBOSPrimitives, dbos_hitl_client

__all__ = ["DBOSPrimitives", "DBOSResolver", "dbos_hitl_client", "decode_dbos_token", "encode_dbos_token"]
