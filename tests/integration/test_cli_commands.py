"""The `bulkocr` commands people run against a gateway: watch a job from its live events,
read its status, list jobs and nodes, cancel and retry, results that wait for a running job,
`--json` for scripts, globs, and the token from a config file."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from bulkocr.contracts import DocumentPlanned, JobSubmitted
from bulkocr.settings import load
from bulkocr_aggregator.coordinator import Coordinator
from bulkocr_client import jobs as job_commands
from bulkocr_client.client import ClientSettings
from bulkocr_client.results import ResultsRequest, results_command
from bulkocr_client.submit import expand_globs
from tests.integration.test_gateway import submit
from tests.integration.test_store import page_done, page_failed
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def running_job(api, jobs: Coordinator, pages: int = 2) -> str:
    job_id = await submit(api, ("book.pdf", b"%PDF"))
    await jobs.submitted(JobSubmitted(job_id=job_id, owner="alice", documents_total=1))
    await jobs.planned(DocumentPlanned(job_id=job_id, doc_id="d0001", pages=pages))
    await jobs.flush()
    return job_id


ALICE_TOKEN = "alice-token"  # the test gateway's token for alice


def gateway(api, *, as_json: bool = False) -> job_commands.Gateway:
    return job_commands.Gateway(url=str(api.make_url("")).rstrip("/"), token=ALICE_TOKEN, as_json=as_json)


async def test_watch_follows_the_events_to_the_end_and_exits_by_the_outcome(feeds, jobs: Coordinator):
    """`bulkocr watch --json` prints each event as a JSON line as the job moves and exits 1
    for a job that ended partial; without --json it ends with the job's summary."""
    api, _ = feeds
    job_id = await running_job(api, jobs)
    out = io.StringIO()
    watching = asyncio.create_task(job_commands.watch_command(gateway(api, as_json=True), job_id, out=out))
    await eventually(lambda: '"event": "snapshot"' in out.getvalue(), what="the snapshot")
    await jobs.outcome(page_done(1, job_id=job_id, doc_id="d0001", node="n1"))
    await jobs.flush()
    await jobs.outcome(page_failed(2, job_id=job_id, doc_id="d0001", node="n2"))
    await jobs.flush()
    assert await asyncio.wait_for(watching, 10) == 1
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert events[0]["event"] == "snapshot"
    assert events[-1] == {"event": "job", "id": events[-1]["id"], "data": {"status": "partial"}}
    pages = [(e["data"]["page"], e["data"]["status"]) for e in events if e["event"] == "page"]
    assert pages == [(1, "done"), (2, "failed")]

    summary = io.StringIO()
    assert await job_commands.watch_command(gateway(api), job_id, out=summary) == 1
    assert f"{job_id} partial: 1 of 2 pages done, 1 failed" in summary.getvalue()
    assert "node n2: 0 done, 1 failed" in summary.getvalue()


async def test_status_jobs_nodes_cancel_and_retry(feeds, jobs: Coordinator):
    """One request each, shown for people or as the gateway's JSON; a refused one exits 2
    with the gateway's reason."""
    api, _ = feeds
    job_id = await running_job(api, jobs)
    out = io.StringIO()

    async def show(command: str, as_json: bool = False) -> int:
        g = gateway(api, as_json=as_json)
        if command == "status":
            return await job_commands.run(g, lambda c: c.status(job_id), job_commands.show_status, out=out)
        if command == "jobs":
            return await job_commands.run(g, lambda c: c.get("/api/bulk/jobs?page=1"), job_commands.show_jobs, out=out)
        return await job_commands.run(g, lambda c: c.get("/api/nodes"), job_commands.show_nodes, out=out)

    assert await show("status") == 0
    assert f"{job_id} processing: 0 of 2 pages done, 0 failed (0 %)" in out.getvalue()
    assert await show("jobs", as_json=True) == 0
    listed = json.loads(out.getvalue()[out.getvalue().index("{") :])
    assert job_id in [job["job_id"] for job in listed["jobs"]]
    assert await show("nodes") == 0

    err = io.StringIO()
    refused = await job_commands.run(
        gateway(api), lambda c: c.control(job_id, "retry-failed"), job_commands.show_status, out=out, err=err
    )
    assert refused == 2
    assert "has no failed pages" in err.getvalue()
    cancel_out = io.StringIO()
    cancelled = await job_commands.run(
        gateway(api),
        lambda c: c.control(job_id, "cancel"),
        lambda answer, o: print(answer["status"], file=o),
        out=cancel_out,
    )
    assert (cancelled, cancel_out.getvalue().strip()) == (0, "cancelling")


async def test_results_of_a_running_job_wait_or_take_what_is_done(feeds, jobs: Coordinator, tmp_path: Path):
    """Not finished: --no-wait says how far it is and exits 1 writing nothing; --partial writes
    what is done now; the default waits for the end, then writes."""
    api, _ = feeds
    job_id = await running_job(api, jobs)
    await jobs.outcome(page_done(1, job_id=job_id, doc_id="d0001"))
    await jobs.flush()
    url = str(api.make_url("")).rstrip("/")

    def request(**extra: bool) -> ResultsRequest:
        return ResultsRequest(job_id=job_id, url=url, token=ALICE_TOKEN, formats=["txt"], out=tmp_path, **extra)

    err = io.StringIO()
    assert await results_command(request(wait=False), out=io.StringIO(), err=err) == 1
    assert "is still processing (1 of 2 pages done); --partial writes what is done now" in err.getvalue()
    assert list(tmp_path.iterdir()) == []

    out = io.StringIO()
    assert await results_command(request(partial=True), out=out, err=io.StringIO()) == 1
    assert (tmp_path / "book.pdf.txt").read_text() == "page 1\f"
    assert "partial" in out.getvalue()

    waiting_err = io.StringIO()
    waiting = asyncio.create_task(results_command(request(), out=io.StringIO(), err=waiting_err))
    await eventually(lambda: "waiting for it" in waiting_err.getvalue(), what="the command to say it waits")
    assert not waiting.done()
    await jobs.outcome(page_done(2, job_id=job_id, doc_id="d0001"))
    await jobs.flush()
    assert await asyncio.wait_for(waiting, 15) == 0
    assert (tmp_path / "book.pdf.txt").read_text() == "page 1\fpage 2"


def test_quoted_globs_are_expanded_and_one_that_matches_nothing_is_an_error(tmp_path: Path):
    for name in ("b.tif", "a.tif", "c.png"):
        (tmp_path / name).write_bytes(b"x")
    assert expand_globs([tmp_path / "*.tif", tmp_path / "c.png"]) == [
        tmp_path / "a.tif",
        tmp_path / "b.tif",
        tmp_path / "c.png",
    ]
    with pytest.raises(Exception, match="matches no file"):
        expand_globs([tmp_path / "*.jp2"])


def test_the_token_and_url_come_from_the_config_file_unless_the_environment_says(tmp_path: Path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('url = "https://ocr.example.org"\ntoken = "from-file"\n')
    monkeypatch.setenv("BULKOCR_CONFIG", str(config))
    settings = load(ClientSettings)
    assert (settings.url, settings.token) == ("https://ocr.example.org", "from-file")
    monkeypatch.setenv("BULKOCR_TOKEN", "from-env")
    assert load(ClientSettings).token == "from-env"
