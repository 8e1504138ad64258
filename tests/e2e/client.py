"""The one HTTP client of the end-to-end tests: submit files to a running gateway, read a job's
status and results, and wait (with `eventually`) until a job's status says something; and the
stack's database, for what HTTP does not show."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp

from bulkocr.mongo import connect_mongo
from bulkocr.settings import MongoSettings
from bulkocr_devstack.stack import LocalStack
from tests.stores import SeedStore
from tests.waiting import eventually

FINISHED = ("completed", "partial", "failed", "cancelled")

Status = dict[str, Any]


def upload_form(files: Mapping[str, bytes], **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData(fields, default_to_multipart=True)
    for name, content in files.items():
        form.add_field("files", io.BytesIO(content), filename=name, content_type="application/octet-stream")
    return form


async def submit(http: aiohttp.ClientSession, gateway: str, files: Mapping[str, bytes], **fields: str) -> str:
    """Upload the files as one job (202 expected); its id."""
    async with http.post(f"{gateway}/api/bulk/jobs", data=upload_form(files, **fields)) as response:
        assert response.status == 202, await response.text()
        job_id: str = (await response.json())["job_id"]
        return job_id


async def job_status(http: aiohttp.ClientSession, gateway: str, job_id: str) -> Status:
    async with http.get(f"{gateway}/api/bulk/status/{job_id}") as response:
        assert response.status == 200, await response.text()
        body: Status = await response.json()
        return body


async def wait_for_status(
    http: aiohttp.ClientSession,
    gateway: str,
    job_id: str,
    condition: Callable[[Status], bool],
    *,
    timeout_s: float,
    what: str,
    meanwhile: Callable[[], None] | None = None,
) -> Status:
    """The job's status once `condition` holds. The gateway may be briefly unable to answer
    (a crash test has taken a server away): that is asked again. `meanwhile` runs at each
    look (a check that fails at once, say, when a service has exited)."""
    latest: list[Status] = []

    async def holds() -> bool:
        if meanwhile is not None:
            meanwhile()
        try:
            current = await job_status(http, gateway, job_id)
        except (aiohttp.ClientError, ValueError, AssertionError):
            return False
        latest[:] = [current]
        return condition(current)

    await eventually(holds, timeout_s=timeout_s, what=f"job {job_id}: {what}", interval_s=0.25)
    return latest[0]


async def wait_for_pages(
    http: aiohttp.ClientSession, gateway: str, job_id: str, pages: int, *, timeout_s: float = 60
) -> Status:
    """The job's status once it has read `pages` pages (a crash test's "mid-job")."""

    def read(status: Status) -> bool:
        return bool(status["progress"]["pages_done"] >= pages)

    return await wait_for_status(http, gateway, job_id, read, timeout_s=timeout_s, what=f"{pages} pages read")


async def wait_finished(
    http: aiohttp.ClientSession,
    gateway: str,
    job_id: str,
    *,
    timeout_s: float = 240,
    meanwhile: Callable[[], None] | None = None,
) -> Status:
    return await wait_for_status(
        http,
        gateway,
        job_id,
        lambda s: s["status"] in FINISHED,
        timeout_s=timeout_s,
        what="finished",
        meanwhile=meanwhile,
    )


async def document_pages(http: aiohttp.ClientSession, gateway: str, job_id: str, doc_id: str) -> Any:
    async with http.get(f"{gateway}/api/bulk/jobs/{job_id}/documents/{doc_id}/json") as response:
        assert response.status == 200, await response.text()
        return (await response.json())["pages"]


async def document_text(http: aiohttp.ClientSession, gateway: str, job_id: str, doc_id: str) -> str:
    async with http.get(f"{gateway}/api/bulk/jobs/{job_id}/documents/{doc_id}/text") as response:
        assert response.status == 200, await response.text()
        return await response.text()


@contextlib.asynccontextmanager
async def stack_store(stack: LocalStack) -> AsyncIterator[SeedStore]:
    """The running stack's database, as the services see it: for checks a user cannot make
    over HTTP (every page's stored outcome)."""
    async with connect_mongo(MongoSettings(url=stack.servers.addresses.mongo_url, timeout_s=3)) as db:
        yield SeedStore(db)
