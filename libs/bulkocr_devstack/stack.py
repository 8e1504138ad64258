"""The whole system on one machine: the servers plus every service as its own process.

Used by `bulkocr up` / `bulkocr down` and by the end-to-end tests. Each service gets the
caller's `BULKOCR_*` settings plus the addresses of the servers started here. "Healthy"
means the gateway answers /health and every consumer is subscribed in nsqd.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

from bulkocr.contracts import (
    AGGREGATOR_CHANNEL,
    ARCHIPELAGO_PUSH,
    DOCUMENT,
    INGEST_CHANNEL,
    JOB_COMPLETED,
    NOTIFIER_CHANNEL,
    OCR_CHANNEL,
    OUTPUTS_CHANNEL,
    PAGE_BATCH,
    PAGES_DONE,
    PUSH_FINISHED,
    SUBSCRIPTIONS,
    UPLOADER_CHANNEL,
)
from bulkocr.errors import ServerStartError
from bulkocr_devstack.servers import SERVER_NAMES, LocalServers, ServerAddresses, free_port

# service name -> (module, the topic/channel it consumes, which tells that it is up)
SERVICES: dict[str, tuple[str, str, str]] = {
    "aggregator": ("bulkocr_aggregator", PAGES_DONE.name, AGGREGATOR_CHANNEL),
    "ingest": ("bulkocr_ingest", DOCUMENT.name, INGEST_CHANNEL),
    "uploader": ("bulkocr_uploader", ARCHIPELAGO_PUSH.name, UPLOADER_CHANNEL),
    "outputs": ("bulkocr_outputs", JOB_COMPLETED.name, OUTPUTS_CHANNEL),
    "notifier": ("bulkocr_notifier", PUSH_FINISHED.name, NOTIFIER_CHANNEL),
    "gateway": ("bulkocr_gateway", "", ""),
}
WORKER_MODULE = "bulkocr_ocr_worker"
STATE_FILE = "state.json"


@dataclass
class LocalStack:
    """The servers and services on loopback; or, given `own_servers` (another host, a
    `command_prefix` such as `ip netns exec NS`), the services beside them, on that host and
    through that prefix (tests/cluster runs one in a network namespace)."""

    state_dir: Path
    workers: int = 1
    port: int = 0
    environment: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    start_timeout_s: float = 120.0
    grace_s: float = 30.0
    own_servers: InitVar[LocalServers | None] = None
    servers: LocalServers = field(init=False)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Each process's ops port (/metrics, /livez, /readyz), kept when it is restarted, and host.
    ops_ports: dict[str, int] = field(default_factory=dict)
    ops_hosts: dict[str, str] = field(default_factory=dict)

    def __post_init__(self, own_servers: LocalServers | None) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.servers = own_servers or LocalServers(self.state_dir / "servers", ServerAddresses())
        if not self.port:
            self.port = free_port()

    @property
    def host(self) -> str:
        return self.servers.addresses.host

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def nsqadmin_url(self) -> str:
        return f"http://{self.host}:{self.servers.addresses.nsqadmin_http}"

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self.servers.start()
        try:
            for topic, channel in SUBSCRIPTIONS:
                _nsqd_post(self.servers.addresses, "/topic/create", topic=topic.name)
                _nsqd_post(self.servers.addresses, "/channel/create", topic=topic.name, channel=channel)
            for name, (module, _, _) in SERVICES.items():
                self.start_service(name, module)
            for index in range(1, self.workers + 1):
                self.start_worker(index)
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        self.save_state()

    def start_worker(self, index: int) -> None:
        self.start_service(f"ocr-worker-{index}", WORKER_MODULE, node=f"{socket.gethostname()}-w{index}")

    def ops_url(self, name: str) -> str:
        return f"http://{self.ops_hosts[name]}:{self.ops_ports[name]}"

    def service_environment(self, node: str | None = None) -> dict[str, str]:
        env = dict(self.environment)
        env.update(self.servers.addresses.environment())
        env["BULKOCR_PORT"] = str(self.port)
        env.setdefault("BULKOCR_HOST", self.host)
        env.setdefault("BULKOCR_LOG_FORMAT", "json")
        # One host: blobs in a folder. GridFS (the default elsewhere, so Swarm nodes need no
        # shared volume) is about 3x slower on FerretDB, which scans its collections. The
        # folder is in this stack's state, never the services' working directory.
        env.setdefault("BULKOCR_BLOB_BACKEND", "directory")
        if env["BULKOCR_BLOB_BACKEND"] == "directory":
            env.setdefault("BULKOCR_BLOB_DIRECTORY", str(self.state_dir / "blobs"))
        if node and "BULKOCR_NODE_ID" not in self.environment:
            env["BULKOCR_NODE_ID"] = node
        return env

    def start_service(self, name: str, module: str, *, node: str | None = None) -> None:
        """Start (or restart) one service process, logging to `<state_dir>/<name>.log`."""
        command = [*self.servers.command_prefix, sys.executable, "-m", module]
        self.launch(name, command, self.service_environment(node))

    def launch(
        self, name: str, command: Sequence[str], environment: Mapping[str, str], *, ops_host: str | None = None
    ) -> None:
        """Start a process of this stack (stopped with it), logging to `<state_dir>/<name>.log`,
        its ops routes on `ops_host` (the stack's host by default) and a port it keeps."""
        self.ops_hosts[name] = ops_host or self.host
        port = self.ops_ports.setdefault(name, free_port())
        ops = {"BULKOCR_OPS_HOST": self.ops_hosts[name], "BULKOCR_OPS_PORT": str(port)}
        with (self.state_dir / f"{name}.log").open("ab") as log_file:
            self.processes[name] = subprocess.Popen(
                list(command),
                env=dict(environment) | ops,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop_service(self, name: str, *, kill: bool = False) -> None:
        """SIGTERM (the service drains) and wait; or SIGKILL its whole process group, OCR
        processes included, as when a container or node dies."""
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        if kill:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=self.grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        for name in list(self.processes):
            self.stop_service(name)
        self.servers.stop()
        (self.state_dir / STATE_FILE).unlink(missing_ok=True)

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while not self._healthy():
            for name, process in self.processes.items():
                if process.poll() is not None:
                    log = self.state_dir / f"{name}.log"
                    # The log's end in the error itself: CI keeps the output, not the state folder.
                    tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-15:])
                    raise ServerStartError(f"{name} exited with {process.returncode}: see {log}; it ends:\n{tail}")
            if time.monotonic() > deadline:
                raise ServerStartError(f"services not healthy after {self.start_timeout_s}s: see {self.state_dir}")
            time.sleep(0.2)

    def _healthy(self) -> bool:
        with contextlib.suppress(OSError, ValueError):
            with urllib.request.urlopen(f"{self.gateway_url}/health", timeout=1) as response:  # noqa: S310  # loopback
                if response.status != 200:
                    return False
            for name in self.processes:
                with urllib.request.urlopen(f"{self.ops_url(name)}/readyz", timeout=2) as response:  # noqa: S310
                    if response.status != 200:
                        return False
            clients = _channel_clients(self.servers.addresses)
            wanted = [(topic, channel) for _, topic, channel in SERVICES.values() if topic]
            return (
                all(clients.get(pair, 0) > 0 for pair in wanted)
                and clients.get((PAGE_BATCH.name, OCR_CHANNEL), 0) >= self.workers
            )
        return False

    def save_state(self) -> None:
        state = {
            "gateway_url": self.gateway_url,
            "nsqadmin_url": self.nsqadmin_url,
            "services": {name: process.pid for name, process in self.processes.items()},
            "metrics": {name: f"{self.ops_url(name)}/metrics" for name in self.processes},
            "servers": {name: process.pid for name, process in self.servers.processes.items()},
            "environment": self.servers.addresses.environment(),
        }
        (self.state_dir / STATE_FILE).write_text(json.dumps(state, indent=2))


def stop_from_state(state_dir: Path, grace_s: float = 30.0) -> list[str]:
    """Stop what `bulkocr up --detach` left running (services first, then the servers)."""
    path = state_dir / STATE_FILE
    if not path.is_file():
        return []
    state = json.loads(path.read_text())
    stopped = []
    for group in ("services", "servers"):
        names = list(state[group])
        if group == "servers":
            names = [name for name in reversed(SERVER_NAMES) if name in state[group]]
        for name in names:
            _stop_process(int(state[group][name]), kill=False, grace_s=grace_s)
            stopped.append(name)
    path.unlink()
    return stopped


def _stop_process(pid: int, *, kill: bool, grace_s: float) -> None:
    """Stop a process that is not our child (started by an earlier `bulkocr up --detach`)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _nsqd_post(addresses: ServerAddresses, path: str, **params: str) -> None:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    request = urllib.request.Request(f"http://{addresses.host}:{addresses.nsqd_http}{path}?{query}", method="POST")
    with urllib.request.urlopen(request, timeout=5):  # noqa: S310  # loopback URL we built
        pass


def _channel_clients(addresses: ServerAddresses) -> dict[tuple[str, str], int]:
    url = f"http://{addresses.host}:{addresses.nsqd_http}/stats?format=json"
    with urllib.request.urlopen(url, timeout=2) as response:  # loopback URL we built
        stats: dict[str, Any] = json.loads(response.read())
    return {
        (topic["topic_name"], channel["channel_name"]): int(channel["client_count"])
        for topic in stats.get("topics") or []
        for channel in topic.get("channels") or []
    }
