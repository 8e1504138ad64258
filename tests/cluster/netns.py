"""The cluster's network: a bridge on a private /24 and one network namespace per machine,
each joined to the bridge by a veth pair. Everything is named `bocr-<tag>...` (tag: six hex
digits) so that a run can find and remove what an earlier, crashed run left behind.

A run holds an flock on `/run/bocr/<tag>.lock` for as long as it lives; the kernel drops the
lock when the process dies, however it dies. The sweep removes every `bocr-` namespace and
link whose tag has no held lock, and leaves a concurrent run's alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

PREFIX = "bocr-"
LOCK_DIR = Path("/run/bocr")
_NAME = re.compile(rf"^{PREFIX}([0-9a-f]{{6}})(?:-[a-z0-9]+)?$")


class HarnessUnavailable(Exception):
    """This machine cannot run the cluster harness (not root, no `ip`, namespaces refused)."""


def ip_binary() -> str:
    """`ip` from iproute2; /usr/sbin and /sbin are often not on a user's PATH."""
    found = shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip") if os.access(p, os.X_OK)), None)
    if found is None:
        raise HarnessUnavailable("`ip` (iproute2) is not installed: `apt-get install iproute2` (make setup does)")
    return found


def ip(*args: str, check: bool = True) -> str:
    """Run `ip ARGS`; its output, or HarnessUnavailable with what it said."""
    done = subprocess.run([ip_binary(), *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise HarnessUnavailable(f"`ip {' '.join(args)}` failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def preflight() -> None:
    """Fail early, and say why, where namespaces cannot be made."""
    if os.geteuid() != 0:
        raise HarnessUnavailable(
            "the cluster tests make network namespaces, a bridge and veth pairs: run them as root "
            f"(uid is {os.geteuid()})"
        )
    ip_binary()


def namespace_pids(namespace: str) -> list[int]:
    return [int(pid) for pid in ip("netns", "pids", namespace, check=False).split()]


def kill_namespace_processes(namespace: str, timeout_s: float = 10.0) -> None:
    """SIGKILL what still runs in one of our namespaces (only the harness starts processes there)."""
    deadline = time.monotonic() + timeout_s
    while pids := namespace_pids(namespace):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise HarnessUnavailable(f"processes {pids} in {namespace} would not die")
        time.sleep(0.05)


def _our_namespaces() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.startswith(PREFIX)]


def _our_links() -> list[str]:
    names = [line.split(":")[1].strip().split("@")[0] for line in ip("-o", "link", "show").splitlines()]
    return [name for name in names if name.startswith(PREFIX)]


def _tag_of(name: str) -> str | None:
    match = _NAME.match(name)
    return match.group(1) if match else None


def _lock_is_free(tag: str) -> bool:
    """Whether no living run holds the tag's lock (taking it, briefly, to find out)."""
    path = LOCK_DIR / f"{tag}.lock"
    try:
        handle = path.open("a")
    except FileNotFoundError:
        return True
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def sweep_leftovers() -> list[str]:
    """Remove the namespaces, links and lock files of runs that are gone; what was removed."""
    removed: list[str] = []
    namespaces, links = _our_namespaces(), _our_links()
    locks = list(LOCK_DIR.glob("*.lock")) if LOCK_DIR.is_dir() else []
    tags = {tag for name in [*namespaces, *links] if (tag := _tag_of(name))} | {p.stem for p in locks}
    for tag in sorted(tags):
        if not _lock_is_free(tag):
            continue  # a run that is alive right now
        for namespace in [n for n in namespaces if _tag_of(n) == tag]:
            kill_namespace_processes(namespace)
            ip("netns", "delete", namespace, check=False)
            removed.append(f"netns {namespace}")
        for link in [n for n in links if _tag_of(n) == tag]:
            ip("link", "delete", link, check=False)  # a veth already went with its namespace
            removed.append(f"link {link}")
        (LOCK_DIR / f"{tag}.lock").unlink(missing_ok=True)
    return removed


def _taken_networks() -> list[ipaddress.IPv4Network]:
    """The machine's addresses and routes (a route line may start with its type: local...)."""
    lines = ip("-4", "-o", "addr").splitlines() + ip("-4", "route", "show", "table", "all").splitlines()
    found = []
    for line in lines:
        words = line.split()
        for word in words[words.index("inet") + 1 :] if "inet" in words else words[:2]:
            with contextlib.suppress(ValueError):
                found.append(ipaddress.IPv4Network(word, strict=False))
                break
    return found


def free_subnet() -> ipaddress.IPv4Network:
    """A 10.x.y.0/24 (RFC 1918) that no address or route of this machine overlaps."""
    taken = [network for network in _taken_networks() if network.prefixlen > 0]
    for _ in range(200):
        candidate = ipaddress.IPv4Network(f"10.{random.randint(64, 250)}.{random.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(network) for network in taken):
            return candidate
    raise HarnessUnavailable("found no free 10.x.y.0/24 for the cluster's bridge")


@dataclass
class Machine:
    """One namespace on the bridge: `veth` is the bridge's end of its cable."""

    name: str
    namespace: str
    veth: str
    address: str

    def prefix(self) -> tuple[str, ...]:
        """How to run a command on this machine."""
        return (ip_binary(), "netns", "exec", self.namespace)


@dataclass
class Network:
    """A bridge, a private /24 with the host side at .1, and the machines named at create()."""

    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    subnet: ipaddress.IPv4Network = field(default_factory=free_subnet)
    machines: dict[str, Machine] = field(default_factory=dict)
    # The machines whose cable was pulled since the owner last asked (Cluster.restore).
    pulled: set[str] = field(default_factory=set)
    _lock: IO[str] | None = None

    @property
    def bridge(self) -> str:
        return f"{PREFIX}{self.tag}"

    @property
    def host_address(self) -> str:
        return str(self.subnet[1])

    def create(self, names: list[str]) -> None:
        """Take the tag's lock first (so no sweep takes us for leftovers), then build."""
        self._take_lock()
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.host_address}/{self.subnet.prefixlen}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for index, name in enumerate(names):
            self._add_machine(name, str(self.subnet[2 + index]))

    def _take_lock(self) -> None:
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        # Locked before it is visible under its name: a sweep never sees it free.
        staging = LOCK_DIR / f".{self.tag}.{os.getpid()}"
        handle = staging.open("w")
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        staging.rename(LOCK_DIR / f"{self.tag}.lock")
        self._lock = handle

    def _add_machine(self, name: str, address: str) -> None:
        machine = Machine(name, f"{self.bridge}-{name}", f"{self.bridge}-{name}", address)
        inside = f"{machine.veth}i"  # renamed to eth0 once inside
        if len(inside) > 15:  # the kernel's limit on interface names
            raise ValueError(f"machine name {name!r} is too long for an interface name")
        ip("netns", "add", machine.namespace)
        self.machines[name] = machine
        ip("link", "add", machine.veth, "type", "veth", "peer", "name", inside, "netns", machine.namespace)
        ip("link", "set", machine.veth, "master", self.bridge, "up")
        ip("-n", machine.namespace, "link", "set", inside, "name", "eth0")
        ip("-n", machine.namespace, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
        ip("-n", machine.namespace, "link", "set", "eth0", "up")
        ip("-n", machine.namespace, "link", "set", "lo", "up")

    def cut(self, name: str) -> None:
        """Pull the machine's cable out at the bridge: its own processes keep running."""
        ip("link", "set", self.machines[name].veth, "down")
        self.pulled.add(name)

    def rejoin(self, name: str) -> None:
        ip("link", "set", self.machines[name].veth, "up")

    def is_up(self, name: str) -> bool:
        """Whether the machine's cable is in (its bridge end administratively up)."""
        flags = ip("-o", "link", "show", "dev", self.machines[name].veth).split("<", 1)[1].split(">", 1)[0]
        return "UP" in flags.split(",")

    def destroy(self) -> None:
        """Every process in our namespaces, the namespaces (and so the veths), the bridge, the lock."""
        if self._lock is None:
            return  # nothing was made: create() takes the lock first
        errors = []
        for machine in self.machines.values():
            try:
                kill_namespace_processes(machine.namespace)
            except HarnessUnavailable as error:
                errors.append(str(error))
            ip("netns", "delete", machine.namespace, check=False)
        ip("link", "delete", self.bridge, check=False)
        (LOCK_DIR / f"{self.tag}.lock").unlink(missing_ok=True)
        self._lock.close()
        self._lock = None
        if errors:
            raise HarnessUnavailable("; ".join(errors))
