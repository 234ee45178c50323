"""The event model shared by both states and by `migrations/`.

`events` (the one module of event types), `reducer` (an event's effect on records), `projection` (the
numbered steps composed into the projector), `keys` (every Redis key name), `codec` (stored JSON), and
`InMemoryState`, the State protocol reduced from those events in process memory. Imports only the domain
modules at the package root.
"""
