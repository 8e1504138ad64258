"""The `bulkocr` command line."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bulkocr import __version__, client
from bulkocr.errors import ServerStartError
from bulkocr.servers import LocalServers, ServerAddresses
from bulkocr.settings import load
from bulkocr.stack import STATE_FILE, LocalStack, stop_from_state

DEFAULT_STATE_DIR = ".bulkocr"


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


def _up(args: argparse.Namespace) -> int:
    """Start the servers and every service on loopback; with --detach, return once healthy."""
    state_dir = Path(args.state_dir)
    if (state_dir / STATE_FILE).is_file():
        print(f"bulkocr is already up (state in {state_dir}); run `bulkocr down` first", file=sys.stderr)
        return 2
    stack = LocalStack(state_dir, workers=args.workers, port=args.port)
    try:
        stack.start()
    except ServerStartError as error:
        print(f"bulkocr up failed: {error}", file=sys.stderr)
        return 1
    print(f"gateway   {stack.gateway_url}")
    print(f"nsqadmin  {stack.nsqadmin_url}")
    print(f"logs      {state_dir}/", flush=True)
    if args.detach:
        return 0
    try:
        _wait_for_stop_signal()
    finally:
        stack.stop()
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = stop_from_state(Path(args.state_dir))
    print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def _wait_for_stop_signal() -> None:
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stopping.append(signum))
    while not stopping:
        signal.pause()


def _submit(args: argparse.Namespace) -> int:
    """Upload files as one job; with --wait, follow it and save each document's text."""
    settings = load(client.ClientSettings)
    fields = {"dpi": args.dpi, "language": args.language, "engine": args.engine}
    request = client.SubmitRequest(
        paths=[Path(p) for p in args.paths],
        url=args.url or settings.url,
        token=settings.token,
        options={name: str(value) for name, value in fields.items() if value is not None},
        wait=args.wait,
        out=Path(args.out) if args.out else None,
    )
    return asyncio.run(client.submit_command(request))


def _add_submit(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    submit = commands.add_parser("submit", help="upload files to the gateway as one job (token from BULKOCR_TOKEN)")
    submit.add_argument("paths", nargs="+", metavar="PATH", help="files, or folders whose files are all sent")
    submit.add_argument("--wait", action="store_true", help="follow the job to its end, then save the texts")
    submit.add_argument("--out", help="where --wait saves texts (default: ./bulkocr-output/<job id>/)")
    submit.add_argument("--url", help=f"the gateway (default: BULKOCR_URL or {client.DEFAULT_URL})")
    submit.add_argument("--dpi", type=int, help="rendering resolution for PDF pages")
    submit.add_argument("--language", help="language code(s) for OCR, e.g. en")
    submit.add_argument("--engine", help="OCR engine: rapidocr, paddle or null")
    submit.set_defaults(run=_submit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bulkocr", description="OCR whole scanned collections.")
    parser.add_argument("--version", action="version", version=f"bulkocr {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    servers = commands.add_parser("servers", help="run nsqd, nsqlookupd, nsqadmin and the database on loopback")
    servers.add_argument("--data-dir", help="where the servers keep their data (default: a new temporary folder)")
    servers.add_argument("--nsqd-port", type=int, default=0, help="nsqd's TCP port (default: a free one)")
    servers.add_argument("--db-port", type=int, default=0, help="the database's port (default: a free one)")
    servers.set_defaults(run=_servers)

    up = commands.add_parser("up", help="run the servers and every service on loopback")
    up.add_argument("--port", type=int, default=8080, help="the gateway's port (default 8080)")
    up.add_argument("--workers", type=int, default=1, help="OCR worker processes (default 1)")
    up.add_argument("--detach", action="store_true", help="return once everything is healthy")
    up.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help=f"logs, data and pids (default {DEFAULT_STATE_DIR})")
    up.set_defaults(run=_up)

    down = commands.add_parser("down", help="stop what `bulkocr up --detach` started")
    down.add_argument("--state-dir", default=DEFAULT_STATE_DIR)
    down.set_defaults(run=_down)

    _add_submit(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
