"""The `bulkocr` command line."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TextIO

from bulkocr import __version__
from bulkocr.errors import ServerStartError
from bulkocr.settings import load
from bulkocr_client import client, jobs
from bulkocr_client.dead_letters import DeadLetterRequest, dlq_command
from bulkocr_client.push import PushRequest, push_command
from bulkocr_client.results import ResultsRequest, results_command
from bulkocr_client.submit import SubmitRequest, submit_command

# The development stack (`servers`, `up`, `down`) is imported by those commands only: the
# client's own commands need nothing of it.

DEFAULT_STATE_DIR = ".bulkocr"


def _servers(args: argparse.Namespace) -> int:
    """Run nsqlookupd, nsqd, nsqadmin and the database on loopback until interrupted."""
    from bulkocr_devstack.servers import LocalServers, ServerAddresses

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
    from bulkocr_devstack.stack import STATE_FILE, LocalStack

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
    print(f"metrics   {stack.ops_url('gateway')}/metrics (every service's: {state_dir}/state.json)")
    print(f"logs      {state_dir}/", flush=True)
    if args.detach:
        return 0
    try:
        _wait_for_stop_signal()
    finally:
        stack.stop()
    return 0


def _down(args: argparse.Namespace) -> int:
    from bulkocr_devstack.stack import stop_from_state

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
    fields = {"dpi": args.dpi, "language": args.language, "engine": args.engine, "callback_url": args.callback_url}
    request = SubmitRequest(
        paths=[Path(p) for p in args.paths],
        url=args.url or settings.url,
        token=settings.token,
        options={name: str(value) for name, value in fields.items() if value is not None},
        wait=args.wait,
        out=Path(args.out) if args.out else None,
        as_json=args.json,
        show_progress=sys.stderr.isatty(),
    )
    return asyncio.run(submit_command(request))


def _add_submit(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    submit = commands.add_parser("submit", help="upload files to the gateway as one job")
    submit.add_argument("paths", nargs="+", metavar="PATH", help="files, folders (all their files) or quoted globs")
    submit.add_argument("--wait", action="store_true", help="follow the job to its end, then save the texts")
    submit.add_argument("--json", action="store_true", help="with --wait: one JSON line per event, no bars")
    submit.add_argument("--out", help="where --wait saves texts (default: ./bulkocr-output/<job id>/)")
    submit.add_argument("--url", help=f"the gateway (default: BULKOCR_URL or {client.DEFAULT_URL})")
    submit.add_argument("--dpi", type=int, help="rendering resolution for PDF pages")
    submit.add_argument("--language", help="the documents' languages as ISO 639-3 codes, e.g. rus or ell,eng")
    submit.add_argument("--engine", help="OCR engine: rapidocr, paddle or null")
    submit.add_argument("--callback-url", help="a signed POST goes there when the job ends (docs/webhooks.md)")
    submit.set_defaults(run=_submit)


def _push(args: argparse.Namespace) -> int:
    """Push a finished job into Archipelago; with --wait, follow it and print the links."""
    settings = load(client.ClientSettings)
    fields: dict[str, str | bool | None] = {"mode": args.mode, "label": args.label, "ado_type": args.ado_type}
    fields |= {"moderation_state": "draft" if args.draft else None, "text": False if args.no_text else None}
    fields["force"] = True if args.force else None
    request = PushRequest(
        job_id=args.job_id,
        url=args.url or settings.url,
        token=settings.token,
        options={name: value for name, value in fields.items() if value is not None},
        wait=args.wait,
    )
    return asyncio.run(push_command(request))


def _add_push(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    push = commands.add_parser("push", help="push a finished job into Archipelago (token from BULKOCR_TOKEN)")
    push.add_argument("job_id", metavar="JOB", help="the job's id, as `bulkocr submit` printed it")
    push.add_argument("--wait", action="store_true", help="follow the push to its end, then print every link")
    push.add_argument("--url", help=f"the gateway (default: BULKOCR_URL or {client.DEFAULT_URL})")
    push.add_argument("--mode", choices=("jsonapi", "ami"), help="ami: stage an AMI set for a curator instead")
    push.add_argument("--label", help="the collection's label (default: bulkocr job JOB)")
    push.add_argument("--type", dest="ado_type", help="the objects' type (default: Book)")
    push.add_argument("--draft", action="store_true", help="create the objects as drafts, not published")
    push.add_argument("--no-text", action="store_true", help="push the searchable PDF only, without the plain text")
    push.add_argument("--force", action="store_true", help="upload documents again even if already pushed")
    push.set_defaults(run=_push)


def _results(args: argparse.Namespace) -> int:
    """Download a job's documents in the given formats."""
    settings = load(client.ClientSettings)
    request = ResultsRequest(
        job_id=args.job_id,
        url=args.url or settings.url,
        token=settings.token,
        formats=[name.strip() for name in args.format.split(",") if name.strip()],
        out=Path(args.out or f"bulkocr-output/{args.job_id}"),
        partial=args.partial,
        wait=not args.no_wait,
    )
    return asyncio.run(results_command(request))


def _add_results(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    results = commands.add_parser("results", help="download a job's documents (token from BULKOCR_TOKEN)")
    results.add_argument("job_id", metavar="JOB", help="the job's id, as `bulkocr submit` printed it")
    results.add_argument("--format", default="txt", help="comma list of txt, json, pdf, hocr, alto, miniocr")
    results.add_argument("--out", help="where to write them (default: ./bulkocr-output/<job id>/)")
    results.add_argument("--url", help=f"the gateway (default: BULKOCR_URL or {client.DEFAULT_URL})")
    results.add_argument("--partial", action="store_true", help="a running job: write what is done now")
    results.add_argument("--no-wait", action="store_true", help="a running job: say so and exit 1 (default: wait)")
    results.set_defaults(run=_results)


def _gateway(args: argparse.Namespace) -> jobs.Gateway:
    settings = load(client.ClientSettings)
    return jobs.Gateway(url=args.url or settings.url, token=settings.token, as_json=args.json)


def _job_command(args: argparse.Namespace) -> int:
    """status, jobs, cancel, retry-failed, nodes: one request, its answer shown."""
    gateway = _gateway(args)
    if args.command == "watch":
        return asyncio.run(jobs.watch_command(gateway, args.job_id))
    call: Callable[[client.GatewayClient], Awaitable[client.Status]]
    show: Callable[[client.Status, TextIO], None] = jobs.show_status
    if args.command == "status":
        call = lambda gateway_client: gateway_client.status(args.job_id)  # noqa: E731
    elif args.command in ("cancel", "retry-failed"):
        call = lambda gateway_client: gateway_client.control(args.job_id, args.command)  # noqa: E731
        show = lambda answer, out: print(f"job {answer['job_id']}: {answer['status']}", file=out)  # noqa: E731
    elif args.command == "jobs":
        call = lambda gateway_client: gateway_client.get(f"/api/bulk/jobs?page={args.page}")  # noqa: E731
        show = jobs.show_jobs
    else:
        call, show = (lambda gateway_client: gateway_client.get("/api/nodes")), jobs.show_nodes
    return asyncio.run(jobs.run(gateway, call, show))


def _add_job_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    described = {
        "watch": "follow a job to its end with live bars (per node too) and the time left",
        "status": "a job's progress, its failed documents and its nodes",
        "cancel": "cancel a running job",
        "retry-failed": "read a finished job's failed pages again",
        "jobs": "your jobs, newest first",
        "nodes": "the OCR nodes and what they did",
    }
    for name, summary in described.items():
        command = commands.add_parser(name, help=summary)
        if name == "jobs":
            command.add_argument("--page", type=int, default=1, help="which page of the list (20 a page)")
        elif name != "nodes":
            command.add_argument("job_id", metavar="JOB", help="the job's id, as `bulkocr submit` printed it")
        command.add_argument("--json", action="store_true", help="print the gateway's JSON (watch: a line per event)")
        command.add_argument("--url", help=f"the gateway (default: BULKOCR_URL or {client.DEFAULT_URL})")
        command.set_defaults(run=_job_command)


def _dlq(args: argparse.Namespace) -> int:
    """List, read, replay or drop the dead letters the system kept (administrators)."""
    settings = load(client.ClientSettings)
    request = DeadLetterRequest(
        action=args.action,
        url=args.url or settings.url,
        token=settings.token,
        letter_id=args.letter_id,
        topic=args.topic,
        limit=args.limit,
        as_json=args.json,
    )
    if request.action != "list" and not request.letter_id:
        print(f"bulkocr: dlq {request.action} needs a letter id (from `bulkocr dlq list`)", file=sys.stderr)
        return 2
    return asyncio.run(dlq_command(request))


def _add_dlq(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlq = commands.add_parser("dlq", help="dead letters: list, show, replay or drop them (an administrator's token)")
    dlq.add_argument("action", choices=("list", "show", "replay", "drop"))
    dlq.add_argument("letter_id", nargs="?", metavar="ID", help="the letter, as `bulkocr dlq list` printed it")
    dlq.add_argument("--topic", help="list: only letters from this topic (e.g. bulkocr.page.batch)")
    dlq.add_argument("--limit", type=int, default=50, help="list: at most this many, newest first (default 50)")
    dlq.add_argument("--json", action="store_true", help="print the gateway's JSON answer")
    dlq.add_argument("--url", help=f"the gateway (default: BULKOCR_URL or {client.DEFAULT_URL})")
    dlq.set_defaults(run=_dlq)


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
    _add_push(commands)
    _add_results(commands)
    _add_job_commands(commands)
    _add_dlq(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
