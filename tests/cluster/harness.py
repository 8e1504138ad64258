"""A bulkocr cluster on one machine: a manager and three worker nodes, each a network namespace
on a private bridge (tests/cluster/netns.py), as on a Docker Swarm with an nsqd on every node.

- manager: FerretDB, nsqlookupd, nsqd and nsqadmin (bulkocr_devstack's LocalServers), then the
  gateway, ingest, aggregator, outputs and uploader (its LocalStack), all through
  `ip netns exec`, on the manager's address.
- node-N: its own nsqd (`--broadcast-address=<node address>`, registered with the manager's
  nsqlookupd under the hostname `nsqd-node-N`, its own UTS namespace's) and one OCR worker
  (`BULKOCR_NODE_ID=node-N`) that finds that nsqd through nsqlookupd
  (`BULKOCR_NSQ_LOCAL_NSQD_HOSTNAME`), publishes to it and consumes through nsqlookupd, as a
  task of the Swarm stack's ocr-worker does beside its node's nsqd-node.

The test process reaches the gateway, the database and every nsqd over the bridge (the host
end has the subnet's .1). Every server listens on its standard port: each namespace has its
own ports. Message timeouts are short, so a page held by a node that is cut off comes back
to the others within seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bulkocr.contracts import OCR_CHANNEL, PAGE_BATCH
from bulkocr_devstack.servers import LocalServers, ServerAddresses
from bulkocr_devstack.stack import WORKER_MODULE, LocalStack
from tests.cluster.netns import HarnessUnavailable, Machine, Network, preflight, sweep_leftovers

NODES = ("n1", "n2", "n3")
MANAGER = "m"
GATEWAY_PORT = 8080
TOKEN = "cluster-token"
# Seconds: nsqd's and every consumer's message timeout (a page held by a node that is cut
# off, or a worker killed, is given to another node after it).
MSG_TIMEOUT_S = 3
CLUSTER_ENV = {
    "BULKOCR_API_TOKENS": f"cluster:{TOKEN}",
    "BULKOCR_ENGINE": "null",
    "BULKOCR_NULL_SECONDS_PER_PAGE": "0.25",
    # Page images in a folder (the namespaces share one filesystem), as `bulkocr up` keeps them:
    # GridFS on FerretDB scans its chunks on every read, so each job would be slower than the last.
    "BULKOCR_BLOB_BACKEND": "directory",
    "BULKOCR_LOG_FORMAT": "json",
    "BULKOCR_NSQ_MSG_TIMEOUT_S": str(MSG_TIMEOUT_S),
    "BULKOCR_NSQ_LOOKUPD_POLL_INTERVAL_S": "1",
    "BULKOCR_NSQ_RECONNECT_INTERVAL_S": "0.5",
    "BULKOCR_NSQ_BACKOFF_BASE_S": "1",
    "BULKOCR_NSQ_BACKOFF_MAX_S": "4",
    # nsqd counts each delivery to a connection that is silently gone (a pulled cable) as an
    # attempt, once per message timeout, until it drops the connection for want of heartbeats
    # (60 s): up to 20 attempts with 3 s timeouts (one with production's 60 s).
    "BULKOCR_NSQ_MAX_ATTEMPTS": "30",
    "BULKOCR_NSQ_DRAIN_TIMEOUT_S": "10",
    "BULKOCR_PAGE_ATTEMPTS": "10",
    "BULKOCR_PAGE_RETRY_DELAY_S": "1",
    "BULKOCR_MONGO_TIMEOUT_S": "3",
    "BULKOCR_HEARTBEAT_INTERVAL_S": "1",
    "BULKOCR_AGGREGATOR_CHECK_INTERVAL_S": "5",
    "BULKOCR_AGGREGATOR_SWEEP_INTERVAL_S": "2",
    # Results stranded on a cut node's nsqd are handed out again after this long without news
    # (longer than ingest takes to render a job here, or a slow split is swept twice).
    "BULKOCR_AGGREGATOR_SWEEP_IDLE_S": "30",
}


def cluster_environment(caller: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment (PATH, PYTHONPATH) without its BULKOCR_* settings, plus ours:
    the cluster is built before any test's own clean environment exists."""
    kept = {name: value for name, value in caller.items() if not name.startswith("BULKOCR_")}
    return {**kept, **CLUSTER_ENV, "BULKOCR_SECRETS_DIR": "/nonexistent"}


def nsqd_hostname(node_id: str) -> str:
    """The hostname a node's nsqd registers with nsqlookupd (the stack's `nsqd-<node>`)."""
    return f"nsqd-{node_id}"


def with_hostname(hostname: str) -> tuple[str, ...]:
    """Run a command in a UTS namespace of its own with this hostname: nsqd registers its
    hostname with nsqlookupd, and the namespaces of one machine share the machine's."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise HarnessUnavailable("`unshare` (util-linux) is not installed")
    return (unshare, "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname)


def standard_ports(host: str, lookupd_host: str = "") -> ServerAddresses:
    """The servers' usual ports: nothing else listens in a namespace of our own."""
    return ServerAddresses(
        host=host,
        nsqlookupd_tcp=4160,
        nsqlookupd_http=4161,
        nsqd_tcp=4150,
        nsqd_http=4151,
        nsqadmin_http=4171,
        database=27017,
        lookupd_host=lookupd_host,
    )


@dataclass
class Node:
    """A worker node: its machine, its nsqd, and the name of its current worker process."""

    machine: Machine
    nsqd: LocalServers
    node_id: str
    worker: str = ""
    starts: int = 0

    @property
    def address(self) -> str:
        return self.machine.address


@dataclass
class Cluster:
    state_dir: Path
    environment: Mapping[str, str] = field(default_factory=lambda: cluster_environment(os.environ))
    network: Network = field(default_factory=Network)
    nodes: dict[str, Node] = field(default_factory=dict)
    stack: LocalStack | None = None

    @property
    def manager(self) -> Machine:
        return self.network.machines[MANAGER]

    @property
    def services(self) -> LocalStack:
        if self.stack is None:
            raise RuntimeError("the cluster is not started")
        return self.stack

    @property
    def gateway_url(self) -> str:
        return self.services.gateway_url

    @property
    def mongo_url(self) -> str:
        return self.services.servers.addresses.mongo_url

    def start(self) -> None:
        """Build the network, the manager, then each node; stop() undoes whatever was made."""
        preflight()
        sweep_leftovers()
        self.network.create([MANAGER, *NODES])
        servers = LocalServers(
            self.state_dir / "manager",
            standard_ports(self.manager.address),
            database="ferretdb",
            msg_timeout_s=MSG_TIMEOUT_S,
            command_prefix=self.manager.prefix(),
        )
        self.stack = LocalStack(
            self.state_dir, workers=0, port=GATEWAY_PORT, environment=self.environment, grace_s=15, own_servers=servers
        )
        self.stack.start()
        for name in NODES:
            machine = self.network.machines[name]
            node_id = f"node-{name[1:]}"
            nsqd = LocalServers(
                self.state_dir / name,
                standard_ports(machine.address, lookupd_host=self.manager.address),
                msg_timeout_s=MSG_TIMEOUT_S,
                names=("nsqd",),
                command_prefix=(*machine.prefix(), *with_hostname(nsqd_hostname(node_id))),
            )
            self.nodes[name] = Node(machine, nsqd, node_id=node_id)
            nsqd.start()
            self.start_worker(name)

    def stop(self) -> None:
        """Processes first (services drain), then the node's servers, then the network; the
        network goes even if a process would not stop (its namespace is emptied with SIGKILL)."""
        try:
            if self.stack is not None:
                self.stack.stop()
            for node in self.nodes.values():
                node.nsqd.stop()
        finally:
            self.network.destroy()

    def start_worker(self, name: str) -> None:
        """A new OCR worker on the node (its log: `<state_dir>/<node>-w<k>.log`)."""
        node = self.nodes[name]
        node.starts += 1
        node.worker = f"{name}-w{node.starts}"
        env = self.services.service_environment(node.node_id)
        env["BULKOCR_NODE_ID"] = node.node_id
        # The manager's nsqd, as the stack's shared settings say, until the worker has found its
        # node's own through nsqlookupd; pages come through nsqlookupd from wherever they are.
        env["BULKOCR_NSQ_LOCAL_NSQD_HOSTNAME"] = nsqd_hostname(node.node_id)
        command = [*node.machine.prefix(), sys.executable, "-m", WORKER_MODULE]
        self.services.launch(node.worker, command, env, ops_host=node.address)
        self.note("worker_started", node=name, worker=node.worker)

    def stop_worker(self, name: str) -> int:
        """SIGTERM the node's worker (as Swarm stops a task: it drains) and wait; its exit code."""
        process = self.services.processes.pop(self.nodes[name].worker)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=self.services.grace_s)
        self.note("worker_stopped", node=name, worker=self.nodes[name].worker, code=str(code))
        return code

    def cut(self, name: str) -> None:
        self.network.cut(name)
        self.note("cut", node=name)

    def rejoin(self, name: str) -> None:
        self.network.rejoin(name)
        self.note("rejoined", node=name)

    def restore(self) -> None:
        """Every cable in and a worker on every node (a test that failed half-way may have left a
        node cut off or its worker stopped). A node whose cable was pulled is rebooted: its
        worker's connections would stay stalled for about as long as the cut lasted (TCP backs
        off its retransmissions), and the next test would wait on them."""
        for name, node in self.nodes.items():
            if not self.network.is_up(name):
                self.rejoin(name)
            if name in self.network.pulled and node.worker in self.services.processes:
                self.services.stop_service(node.worker, kill=True)
                self.note("worker_killed", node=name, worker=node.worker)
            if node.worker not in self.services.processes:
                self.start_worker(name)
        self.network.pulled.clear()

    def note(self, event: str, **fields: str) -> None:
        """What the harness did and when, beside the services' logs (`cluster.log`)."""
        line = {"event": event, **fields, "timestamp": datetime.now(UTC).isoformat()}
        with (self.state_dir / "cluster.log").open("a") as log:
            log.write(json.dumps(line) + "\n")

    def worker_id(self, name: str) -> str:
        """The worker id its pages are stored under: node id and process id (`ip netns exec`
        execs the worker, so the process we started is the worker)."""
        return f"{self.nodes[name].node_id}-{self.services.processes[self.nodes[name].worker].pid}"

    def worker_logs(self) -> list[Path]:
        return sorted(self.state_dir.glob("n*-w*.log"))

    def worker_log(self, name: str) -> str:
        return (self.state_dir / f"{self.nodes[name].worker}.log").read_text(errors="replace")

    def check_processes(self) -> None:
        """Fail at once, naming the log to read, if any process of the cluster has exited."""
        for name, process in self.services.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}: see {self.state_dir}/{name}.log")

    def page_consumers(self) -> dict[str, set[str]]:
        """Per node, the connections (address:port) its worker takes pages on from the manager's
        nsqd, where pages are queued; a restarted worker's connection has another port."""
        addresses = {node.address: name for name, node in self.nodes.items()}
        found: dict[str, set[str]] = {}
        for client in _channel_clients(self.services.servers.addresses, PAGE_BATCH.name, OCR_CHANNEL):
            remote = str(client["remote_address"])
            if (name := addresses.get(remote.rsplit(":", 1)[0])) is not None:
                found.setdefault(name, set()).add(remote)
        return found

    @contextlib.contextmanager
    def pages_held(self) -> Iterator[None]:
        """Pause the page channel on the manager's nsqd for the block (pages in hand are still
        read and finished; no new one goes out), and let it go again whatever happens."""
        self._page_channel("pause")
        try:
            yield
        finally:
            self._page_channel("unpause")

    def _page_channel(self, action: str) -> None:
        a = self.services.servers.addresses
        url = f"http://{a.host}:{a.nsqd_http}/channel/{action}?topic={PAGE_BATCH.name}&channel={OCR_CHANNEL}"
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5):
            self.note(f"page_channel_{action}")

    def published_to(self, address: str, topic: str) -> int:
        """How many messages of `topic` the nsqd at `address` has taken in (every nsqd here
        listens on the standard ports)."""
        url = f"http://{address}:{self.services.servers.addresses.nsqd_http}/stats?format=json&topic={topic}"
        with urllib.request.urlopen(url, timeout=2) as response:
            stats: dict[str, Any] = json.loads(response.read())
        return sum(int(entry["message_count"]) for entry in stats.get("topics") or [] if entry["topic_name"] == topic)

    def producers(self, topic: str) -> set[str]:
        """The addresses of the nsqds that nsqlookupd sends `topic`'s consumers to."""
        a = self.services.servers.addresses
        url = f"http://{a.host}:{a.nsqlookupd_http}/lookup?topic={topic}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                body: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:  # no nsqd has the topic
                return set()
            raise
        return {str(producer["broadcast_address"]) for producer in body.get("producers") or []}

    def healthy(self) -> bool:
        """Every cable in, every worker running and taking pages."""
        self.check_processes()
        cables = all(self.network.is_up(name) for name in NODES)
        return cables and set(self.page_consumers()) == set(NODES)


def _channel_clients(addresses: ServerAddresses, topic: str, channel: str) -> list[dict[str, Any]]:
    url = f"http://{addresses.host}:{addresses.nsqd_http}/stats?format=json&topic={topic}"
    with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(url, timeout=2) as response:
        stats: dict[str, Any] = json.loads(response.read())
        for entry in stats.get("topics") or []:
            for found in entry.get("channels") or []:
                if entry["topic_name"] == topic and found["channel_name"] == channel:
                    clients: list[dict[str, Any]] = found.get("clients") or []
                    return clients
    return []
