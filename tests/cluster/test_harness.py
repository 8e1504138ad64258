"""The harness itself: what a crashed run left behind is swept (its processes too), a living
run's network is left alone, and a machine that cannot make namespaces says why."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.cluster.netns import (
    LOCK_DIR,
    HarnessUnavailable,
    Network,
    ip,
    ip_binary,
    preflight,
    sweep_leftovers,
)

pytestmark = pytest.mark.cluster


def namespaces() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").splitlines()]


def links() -> list[str]:
    return [line.split(":")[1].strip().split("@")[0] for line in ip("-o", "link", "show").splitlines()]


def test_sweep_removes_what_a_dead_run_left_and_spares_a_living_run():
    """A crashed run's namespace (with a process still in it), bridge and lock file go; a run
    that is alive (it holds its lock) keeps its network."""
    preflight()
    dead = Network()
    namespace = f"{dead.bridge}-m"
    ip("netns", "add", namespace)
    ip("link", "add", dead.bridge, "type", "bridge")
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    (LOCK_DIR / f"{dead.tag}.lock").write_text("1\n")  # its owner is gone: nobody holds it
    orphan = subprocess.Popen([ip_binary(), "netns", "exec", namespace, "sleep", "300"])
    alive = Network()
    try:
        alive.create(["m"])
        removed = sweep_leftovers()
        assert f"netns {namespace}" in removed
        assert f"link {dead.bridge}" in removed
        assert orphan.wait(timeout=10) == -9
        assert namespace not in namespaces()
        assert dead.bridge not in links()
        assert not (LOCK_DIR / f"{dead.tag}.lock").exists()
        assert f"{alive.bridge}-m" in namespaces()
        assert alive.bridge in links()
    finally:
        alive.destroy()
        orphan.kill()
        orphan.wait()
        ip("netns", "delete", namespace, check=False)
        ip("link", "delete", dead.bridge, check=False)
        (LOCK_DIR / f"{dead.tag}.lock").unlink(missing_ok=True)
    assert alive.bridge not in links()
    assert f"{alive.bridge}-m" not in namespaces()


def test_without_root_the_harness_refuses_and_says_why(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(HarnessUnavailable, match="run them as root"):
        preflight()


def test_without_ip_the_harness_refuses_and_says_why(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(HarnessUnavailable, match="iproute2"):
        preflight()
