"""Start and stop the real servers on loopback: nsqlookupd, nsqd, nsqadmin and the database.

One entry point for test fixtures, `bulkocr servers` and `bulkocr up`. The binaries are
the project's own builds (`deploy/build-servers.sh` puts them in `.tools/bin`), or found on
PATH. The database is FerretDB on SQLite, or `mongod` when one is on PATH and wanted.
Each server gets a free port (or a given one), its own data folder, and is waited on
until it answers; a server that does not start is an error, never a silent skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bulkocr.errors import ServerStartError

SERVER_NAMES = ("nsqlookupd", "nsqd", "nsqadmin", "database")
Database = Literal["ferretdb", "mongod", "auto"]


_HANDED_OUT: set[tuple[str, int]] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on `host` now that this process has not handed out before. The kernel may
    offer a port it has just offered (measured: about 1 in 2,000 picks repeats one of the last
    eight), and two servers given the same port collide once the second one binds it."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if (host, port) not in _HANDED_OUT:
            _HANDED_OUT.add((host, port))
            return port
    raise ServerStartError(f"no free port on {host} that was not handed out already")


def find_binary(name: str, tools_bin: Path | None = None) -> Path:
    """The project's own build first (BULKOCR_TOOLS_BIN or ./.tools/bin), then PATH."""
    folders = [tools_bin] if tools_bin else []
    folders.append(Path(os.environ.get("BULKOCR_TOOLS_BIN", ".tools/bin")))
    for folder in folders:
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ServerStartError(f"{name} not found in {[str(f) for f in folders]} or on PATH: run `make servers`")


@dataclass
class ServerAddresses:
    host: str = "127.0.0.1"
    nsqlookupd_tcp: int = 0
    nsqlookupd_http: int = 0
    nsqd_tcp: int = 0
    nsqd_http: int = 0
    nsqadmin_http: int = 0
    database: int = 0
    # Where nsqlookupd is when it runs elsewhere (an nsqd on another node); empty: `host`.
    lookupd_host: str = ""

    def assign_free_ports(self) -> None:
        for name in ("nsqlookupd_tcp", "nsqlookupd_http", "nsqd_tcp", "nsqd_http", "nsqadmin_http", "database"):
            if not getattr(self, name):
                setattr(self, name, free_port(self.host))

    @property
    def nsqlookupd_host(self) -> str:
        return self.lookupd_host or self.host

    @property
    def mongo_url(self) -> str:
        return f"mongodb://{self.host}:{self.database}"

    def environment(self) -> dict[str, str]:
        """The `BULKOCR_*` settings that point a service at these servers."""
        return {
            "BULKOCR_NSQ_NSQD_TCP_ADDRESSES": f"{self.host}:{self.nsqd_tcp}",
            "BULKOCR_NSQ_NSQD_HTTP_ADDRESS": f"{self.host}:{self.nsqd_http}",
            "BULKOCR_NSQ_LOOKUPD_HTTP_ADDRESSES": f"{self.nsqlookupd_host}:{self.nsqlookupd_http}",
            "BULKOCR_MONGO_URL": self.mongo_url,
        }


@dataclass
class LocalServers:
    """The four servers (or the `names` given) as child processes; use as a context manager
    or start()/stop(). `command_prefix` runs each one through a launcher: `ip netns exec NS`
    puts it in a network namespace (tests/cluster)."""

    data_dir: Path
    addresses: ServerAddresses = field(default_factory=ServerAddresses)
    database: Database = "auto"
    tools_bin: Path | None = None
    start_timeout_s: float = 30.0
    msg_timeout_s: float = 60.0
    names: tuple[str, ...] = SERVER_NAMES
    command_prefix: tuple[str, ...] = ()
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __enter__(self) -> LocalServers:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def database_kind(self) -> Literal["ferretdb", "mongod"]:
        if self.database == "auto":
            return "mongod" if shutil.which("mongod") else "ferretdb"
        return self.database

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.addresses.assign_free_ports()
        try:
            for name in SERVER_NAMES:
                if name in self.names:
                    self.start_server(name)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for name in reversed(SERVER_NAMES):
            self.stop_server(name)

    def start_server(self, name: str) -> None:
        """Start one server (again, after a stop or kill) on its same ports and data."""
        if name in self.processes and self.processes[name].poll() is None:
            return
        command = [*self.command_prefix, *self._command(name)]
        log_path = self.data_dir / f"{name}.log"
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[name] = process
        try:
            self._wait_until_answering(name, process, log_path)
        except ServerStartError:
            self.stop_server(name)
            raise

    def stop_server(self, name: str, *, kill: bool = False, timeout_s: float = 10.0) -> None:
        """Stop one server: SIGTERM and wait (nsqd then flushes its queues), or SIGKILL."""
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _command(self, name: str) -> list[str]:
        a = self.addresses
        if name == "nsqlookupd":
            return [
                str(find_binary("nsqlookupd", self.tools_bin)),
                f"--tcp-address={a.host}:{a.nsqlookupd_tcp}",
                f"--http-address={a.host}:{a.nsqlookupd_http}",
                f"--broadcast-address={a.host}",
                "--log-level=warn",
            ]
        if name == "nsqd":
            data = self.data_dir / "nsqd"
            data.mkdir(exist_ok=True)
            return [
                str(find_binary("nsqd", self.tools_bin)),
                f"--tcp-address={a.host}:{a.nsqd_tcp}",
                f"--http-address={a.host}:{a.nsqd_http}",
                f"--data-path={data}",
                f"--broadcast-address={a.host}",
                f"--lookupd-tcp-address={a.nsqlookupd_host}:{a.nsqlookupd_tcp}",
                f"--msg-timeout={int(self.msg_timeout_s * 1000)}ms",
                "--log-level=warn",
            ]
        if name == "nsqadmin":
            return [
                str(find_binary("nsqadmin", self.tools_bin)),
                f"--http-address={a.host}:{a.nsqadmin_http}",
                f"--lookupd-http-address={a.nsqlookupd_host}:{a.nsqlookupd_http}",
                "--log-level=warn",
            ]
        return self._database_command()

    def _database_command(self) -> list[str]:
        a = self.addresses
        data = self.data_dir / self.database_kind
        data.mkdir(exist_ok=True)
        if self.database_kind == "mongod":
            return [
                str(find_binary("mongod", self.tools_bin)),
                f"--bind_ip={a.host}",
                f"--port={a.database}",
                f"--dbpath={data}",
                "--quiet",
            ]
        return [
            str(find_binary("ferretdb", self.tools_bin)),
            "--handler=sqlite",
            f"--sqlite-url=file:{data}/",
            f"--listen-addr={a.host}:{a.database}",
            f"--state-dir={data}",
            "--debug-addr=-",
            "--telemetry=disable",
            "--log-level=warn",
        ]

    def _wait_until_answering(self, name: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerStartError(f"{name} exited with {process.returncode}: {_tail(log_path)}")
            if self._answers(name):
                return
            time.sleep(0.05)
        raise ServerStartError(f"{name} did not answer within {self.start_timeout_s}s: {_tail(log_path)}")

    def _answers(self, name: str) -> bool:
        a = self.addresses
        if name == "database":
            return _tcp_open(a.host, a.database)
        port = {"nsqlookupd": a.nsqlookupd_http, "nsqd": a.nsqd_http, "nsqadmin": a.nsqadmin_http}[name]
        path = "/ping" if name != "nsqadmin" else "/"
        return _http_ok(f"http://{a.host}:{port}{path}")


def _tcp_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _http_ok(url: str) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=0.5) as response:  # noqa: S310  # loopback URL we built
        return bool(response.status == 200)
    return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
