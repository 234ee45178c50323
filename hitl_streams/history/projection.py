"""The projector: the composition of the numbered steps in `migrations/`.

A step is a module `migrations/NNNN_name.py` defining `STEP = Step(...)`. Its `project(change, ops)`
says which keys one `Change` (an event, the subject before and after) writes. The projector runs every
step in order and collects their writes into `Ops`. The same `Ops` are executed atomically, with the
event's XADD, by the live write script, and in pipelines by a replay: there is one projector.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from ..errors import SchemaError
from .reducer import Change

__all__ = ["Op", "Ops", "Projector", "Step", "load_steps", "migrations_dir"]

Op = tuple[str, str, tuple[str | bytes, ...]]
"""One write: (opcode, key, arguments). Opcodes: S set, Z zadd, R zrem, A sadd, P rpush position,
H append position to a HASH field, E expire at (unix ms) a key written just before."""


class Ops:
    """The key writes of one event, in order."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[Op] = []

    def set(self, key: str, value: bytes) -> None:
        self.items.append(("S", key, (value,)))

    def zadd(self, key: str, score: int, member: str) -> None:
        self.items.append(("Z", key, (str(score), member)))

    def zrem(self, key: str, member: str) -> None:
        self.items.append(("R", key, (member,)))

    def sadd(self, key: str, member: str) -> None:
        self.items.append(("A", key, (member,)))

    def push_position(self, key: str) -> None:
        """Append the event's own stream id (known only once it is appended) to a LIST."""
        self.items.append(("P", key, ()))

    def push_position_to_field(self, key: str, field: str) -> None:
        """Append the event's own stream id to a HASH field's space-separated list of positions."""
        self.items.append(("H", key, (field,)))

    def expire_at(self, key: str, unix_ms: int) -> None:
        """The key (written by an earlier op of this event: a SET clears a TTL) expires at `unix_ms`.
        Deterministic, so a replay gives the key the same deadline; a deadline already past deletes it,
        live as in a replay."""
        self.items.append(("E", key, (str(unix_ms),)))

    def drop(self, code: str, key: str) -> None:
        """Withdraw an earlier step's write: how a later step supersedes it (steps are append-only)."""
        items = self.items
        for i in range(len(items) - 1, -1, -1):  # usually the last few: the step just before wrote it
            if items[i][1] == key and items[i][0] == code:
                del items[i]

    def __iter__(self) -> Iterator[Op]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True, slots=True)
class Step:
    """One projection step. `legacy_ids` are the TypeScript ledger ids it stands for, recorded with it so
    an `IoredisState` pointed at the same prefix sees its own migrations as applied. `events`: the event
    classes (subclasses included) for which `project` can write anything; the projector does not call it
    for any other event. `None` (the default): every event."""

    id: str
    description: str
    project: Callable[[Change, Ops], None]
    legacy_ids: tuple[str, ...] = field(default=())
    events: tuple[type, ...] | None = None


_STEP_FILE = re.compile(r"(\d{4})_[a-z0-9_]+\.py")


def migrations_dir() -> Path:
    """Inside an installed wheel the steps ship as `hitl_streams/migrations`; in a checkout they are the
    top-level `migrations/` folder."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "migrations", package.parent / "migrations"):
        if candidate.is_dir():
            return candidate
    raise SchemaError(f"hitl-streams: no migrations folder next to {package}; the installation is incomplete")


def _load_module(path: Path) -> ModuleType:
    name = f"hitl_streams_migrations.m{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SchemaError(f"cannot load projection step {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_steps(folder: Path | None = None) -> list[Step]:
    """Every step, in order. The numbering must be 0001, 0002, ... without gaps, each id its file name."""
    folder = folder or migrations_dir()
    files = sorted(p for p in folder.iterdir() if _STEP_FILE.fullmatch(p.name))
    steps: list[Step] = []
    for expected, path in enumerate(files, start=1):
        number = int(path.name[:4])
        if number != expected:
            raise SchemaError(
                f"projection steps must be numbered without gaps: expected {expected:04d}, got {path.name}"
            )
        step = getattr(_load_module(path), "STEP", None)
        if not isinstance(step, Step) or step.id != path.stem:
            raise SchemaError(f"{path} must define STEP = Step(id={path.stem!r}, ...)")
        steps.append(step)
    return steps


class Projector:
    """The composition of steps: `project(change)` returns the writes of every step, in step order."""

    def __init__(self, steps: Sequence[Step] | None = None) -> None:
        self.steps: tuple[Step, ...] = tuple(load_steps() if steps is None else steps)
        # Per event class, the steps that declare it (see Step.events), found once per class: a resolve
        # runs five of the nine steps, an audit event two. Calling a step that ignores the event cost
        # 1-3k instructions each, on every write and every replayed event.
        self._by_class: dict[type, tuple[Callable[[Change, Ops], None], ...]] = {}

    @property
    def ledger_ids(self) -> list[str]:
        """Every id a fully migrated prefix records in `{prefix}:meta:migrations`."""
        return [i for s in self.steps for i in (s.id, *s.legacy_ids)]

    def functions_for(self, event_class: type) -> tuple[Callable[[Change, Ops], None], ...]:
        """The `project` functions of the steps that can write for events of `event_class`, in order."""
        found = self._by_class.get(event_class)
        if found is None:
            found = self._by_class[event_class] = tuple(
                step.project for step in self.steps if step.events is None or issubclass(event_class, step.events)
            )
        return found

    def project(self, change: Change) -> Ops:
        ops = Ops()
        functions = self._by_class.get(type(change.event)) or self.functions_for(type(change.event))
        for project in functions:  # every write and every replayed event: no attribute lookups
            project(change, ops)
        return ops
