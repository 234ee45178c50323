"""The built wheel carries the projection steps: install it into a fresh venv and migrate a prefix."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from redis.asyncio import Redis

from hitl_streams.history.keys import Keys
from hitl_streams.history.projection import load_steps

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


async def test_wheel_ships_migrations_and_runs_ensure_schema(
    tmp_path: Path, redis_url: str, redis: Redis, table_name: str
) -> None:
    run(sys.executable, "-m", "build", "--wheel", "--outdir", tmp_path / "dist", ROOT)
    (wheel,) = (tmp_path / "dist").glob("hitl_streams-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    steps = [s.id for s in load_steps()]
    assert all(f"hitl_streams/migrations/{step}.py" in names for step in steps), names

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", wheel)
    script = textwrap.dedent(
        f"""
        import asyncio, hitl_streams, redis.asyncio as r
        from hitl_streams import StreamState, NewHumanRequest, actions
        assert "site-packages" in hitl_streams.__file__, hitl_streams.__file__
        async def main():
            client = r.Redis.from_url({redis_url!r})
            state = StreamState(client, table_name={table_name!r})
            await state.ensure_schema()
            await state.create(NewHumanRequest(id="w", token="t", channel="inbox", message="m",
                                               actions=actions().approve().build()))
            print(len(state.projector.steps))
            await client.aclose()
        asyncio.run(main())
        """
    )
    assert run(python, "-c", script, cwd=tmp_path).strip() == str(len(steps))
    keys = Keys.for_table(table_name)
    ledger = {m.decode() for m in await redis.smembers(keys.meta_migrations)}
    assert set(steps) <= ledger
    assert await redis.exists(keys.req("w")) == 1
