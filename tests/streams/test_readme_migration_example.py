"""The README's "Writing a step" example (Internals, Migrations), run as written: a prefix written by the
shipped steps gets the new step by replaying history, and the projection it adds matches history."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from hitl_streams import NewHumanRequest, StreamState, actions
from hitl_streams.history.projection import Projector, Step, load_steps

pytestmark = pytest.mark.redis

README = Path(__file__).resolve().parents[2] / "README.md"


def _step_example() -> str:
    section = README.read_text().split("### Migrations: projection steps\n", 1)[1].split("\n### ", 1)[0]
    blocks: list[str] = re.findall(r"```python\n(.*?)```", section, re.S)
    [block] = [b for b in blocks if "STEP = Step(" in b]
    return block


def test_the_example_takes_the_next_free_number() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(_step_example(), "README.md", "exec"), namespace)
    step = namespace["STEP"]
    shipped = [s.id for s in load_steps()]
    assert int(step.id[:4]) == int(shipped[-1][:4]) + 1
    assert f"migrations/{step.id}.py" in README.read_text()


async def test_the_example_step_projects_by_replaying_history(redis: Redis, table_name: str) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(_step_example(), "README.md", "exec"), namespace)
    step: Step = namespace["STEP"]
    old = StreamState(redis, table_name=table_name)
    for i, channel in enumerate(["inbox", "inbox", "ops"]):
        approve = actions().approve().build()
        await old.create(NewHumanRequest(id=f"r{i}", token=f"t{i}", channel=channel, message="m", actions=approve))

    new = StreamState(redis, table_name=table_name, projector=Projector([*load_steps(), step]))
    assert [s.id for s in (await new.schema_status()).pending] == [step.id]
    await new.ensure_schema()
    prefix = new.keys.prefix
    assert await redis.zrange(f"{prefix}:idx:channel:inbox", 0, -1) == [b"r0", b"r1"]
    assert await redis.zrange(f"{prefix}:idx:channel:ops", 0, -1) == [b"r2"]
    report = await new.verify()
    assert report.clean, report.to_dict()
