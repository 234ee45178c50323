"""`StreamState` and the Redis machinery only it uses.

The commit script (`scripts`), the batching link (`autobatch`), bulk replay (`bulk`, `replay`), the schema
and migration runner (`schema`, `locks`), the subject cache, reply helpers, `connect()`, and `adopt`, which
gives an existing TypeScript `IoredisState` deployment its history. Imports the domain and `history/`.
"""

from .stream_state import StreamState

__all__ = ["StreamState"]
