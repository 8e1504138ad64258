"""Starting local servers fails loudly when a binary is missing or a server does not answer."""

from __future__ import annotations

import pytest

from bulkocr.errors import ServerStartError
from bulkocr_devstack.servers import LocalServers, ServerAddresses, find_binary, free_port


def test_missing_binary_is_an_error_that_says_how_to_build_it(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """With no build and nothing on PATH, the error names the server and `make servers`."""
    monkeypatch.setenv("BULKOCR_TOOLS_BIN", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServerStartError, match=r"nsqd not found.*make servers"):
        find_binary("nsqd")


def test_a_server_that_exits_at_once_fails_start_with_its_log(tmp_path):
    """A binary that starts and dies makes start() raise with the server's own output, leaving nothing running."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for name in ("nsqlookupd", "nsqd", "nsqadmin", "ferretdb"):
        script = fake_bin / name
        script.write_text("#!/bin/sh\necho 'address already in use' >&2\nexit 3\n")
        script.chmod(0o755)
    servers = LocalServers(tmp_path / "data", database="ferretdb", tools_bin=fake_bin, start_timeout_s=5)
    with pytest.raises(ServerStartError, match="nsqlookupd exited with 3: address already in use"):
        servers.start()
    assert servers.processes == {}


def test_free_ports_are_assigned_once_and_kept():
    """Ports given stay as given; the rest become distinct free ports that restarts reuse."""
    addresses = ServerAddresses(nsqd_tcp=4150)
    addresses.assign_free_ports()
    ports = [addresses.nsqlookupd_tcp, addresses.nsqlookupd_http, addresses.nsqd_http, addresses.database]
    assert addresses.nsqd_tcp == 4150
    assert len(set(ports)) == len(ports)
    assert all(ports)
    before = addresses.environment()
    addresses.assign_free_ports()
    assert addresses.environment() == before


def test_free_ports_are_never_handed_out_twice():
    """Every service of a stack gets a port picked a moment before it binds it: the kernel
    sometimes offers a port it has just offered, and two services given it collide. Across
    thousands of picks (more than a whole test run makes) no port comes back."""
    ports = [free_port() for _ in range(5000)]
    assert len(set(ports)) == len(ports)
