"""The `bulkocr` command line."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bulkocr import __version__
from bulkocr.servers import LocalServers, ServerAddresses


def _servers(args: argparse.Namespace) -> int:
    """Run nsqlookupd, nsqd, nsqadmin and the database on loopback until interrupted."""
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="bulkocr-servers-"))
    servers = LocalServers(data_dir, ServerAddresses(nsqd_tcp=args.nsqd_port, database=args.db_port))
    with servers:
        print(f"nsqadmin  http://127.0.0.1:{servers.addresses.nsqadmin_http}")
        for key, value in servers.addresses.environment().items():
            print(f"export {key}={value}")
        print(f"data in {data_dir}; Ctrl-C stops", flush=True)
        _wait_for_stop_signal()
    return 0


def _wait_for_stop_signal() -> None:
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stopping.append(signum))
    while not stopping:
        signal.pause()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bulkocr", description="OCR whole scanned collections.")
    parser.add_argument("--version", action="version", version=f"bulkocr {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    servers = commands.add_parser("servers", help="run nsqd, nsqlookupd, nsqadmin and the database on loopback")
    servers.add_argument("--data-dir", help="where the servers keep their data (default: a new temporary folder)")
    servers.add_argument("--nsqd-port", type=int, default=0, help="nsqd's TCP port (default: a free one)")
    servers.add_argument("--db-port", type=int, default=0, help="the database's port (default: a free one)")
    servers.set_defaults(run=_servers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
