"""Pipeline cost at the sizes users have, without OCR cost (the null engine).

    .venv/bin/python bench/bench_pipeline.py                       # every scenario
    .venv/bin/python bench/bench_pipeline.py --only sizes --sizes 1000,10000

Scenarios, each on a fresh `LocalStack` (the embedded default stack: FerretDB, one nsqd,
`--workers` OCR worker processes):

- sizes: one TIFF of N small pages per size, end to end; pages/s, the ratio of the rates
  (1.0 = a page costs the same in a big job as in a small one), and the CPU seconds per
  page of the aggregator and the database. A first job of `--warm-up` pages runs before
  them, timed apart: it also pays for what the stack's start left to its first use. Each
  size runs `--repeat` times and its median run is reported.
- files: one job of N small PNGs with 45-character archive-style names: upload seconds,
  accepted or not, seconds to complete, status body size.
- fair: a 4-page job submitted 3 s after a 1,000-page job with the null engine slowed to
  0.1 s a page: how long the small job takes and how far the big one is when it finishes.
- full: the same small job on an empty database and on one holding 50,000 pages of
  earlier, retained jobs.

Ratios are measured within one run, since these machines are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from bulkocr.contracts import FINISHED_STATUSES, JobOptions, utcnow
from bulkocr.mongo import connect_mongo, new_job, page_key
from bulkocr.mongo.records import RESULT_PACKED, packed_result
from bulkocr.page_model import PageText
from bulkocr.settings import MongoSettings
from bulkocr_devstack.stack import LocalStack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.stores, run as a script

from tests.stores import SeedStore

TOKEN = "bench"  # noqa: S105  # a throwaway token for a local run
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def tiff_of(pages: int, size: tuple[int, int] = (200, 100)) -> bytes:
    """One multi-page TIFF of small bilevel pages (splitting costs little, so the pipeline
    shows). Uncompressed: libtiff finds a Group 4 frame by walking the file's directories
    from the first, so splitting an N-page G4 TIFF costs O(N) a page (measured 0.77 ms a
    page at 1,000 frames, 3.9 ms at 10,000), which would hide the pipeline's own cost."""
    frame = Image.new("1", size, 1)
    buffer = io.BytesIO()
    frame.save(buffer, format="TIFF", save_all=True, append_images=[frame] * (pages - 1), compression="raw")
    return buffer.getvalue()


def png_of(index: int) -> bytes:
    """A small page, different for every index (identical files would be read once)."""
    image = Image.new("L", (120, 60), 255)
    for bit in range(16):
        image.putpixel((bit, 0), 0 if index >> bit & 1 else 255)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def archive_name(index: int) -> str:
    """A 45-character archive-style file name."""
    return f"coll-0042_box-017_folder-03_item-{index:05d}.png"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(pid: int) -> float:
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += cpu_seconds(int(child))
    return total


@dataclass
class Bench:
    stack: LocalStack
    http: aiohttp.ClientSession

    async def submit(self, files: Mapping[str, bytes], **fields: str) -> str:
        form = aiohttp.FormData()
        for name, data in files.items():
            form.add_field("files", io.BytesIO(data), filename=name, content_type="application/octet-stream")
        for name, value in fields.items():
            form.add_field(name, value)
        timeout = aiohttp.ClientTimeout(total=3600)
        async with self.http.post(f"{self.stack.gateway_url}/api/bulk/jobs", data=form, timeout=timeout) as response:
            body = await response.json()
            if response.status != 202:
                raise RuntimeError(f"refused: {response.status} {body}")
            return str(body["job_id"])

    async def status(self, job_id: str) -> tuple[dict[str, Any], int]:
        async with self.http.get(f"{self.stack.gateway_url}/api/bulk/status/{job_id}") as response:
            raw = await response.read()
            return json.loads(raw), len(raw)

    async def finished(self, job_id: str, timeout_s: float = 3600, poll_s: float = 0.5) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        shown = time.monotonic()
        while time.monotonic() < deadline:
            status, _ = await self.status(job_id)
            if status["status"] in FINISHED_STATUSES:
                return status
            if time.monotonic() - shown > 10:  # a long run shows it is moving (or not)
                shown = time.monotonic()
                progress = status["progress"]
                print(
                    f"  {job_id}: {status['status']}, {progress['pages_done']:,} of {progress['pages_total']:,} pages"
                )
            await asyncio.sleep(poll_s)
        raise TimeoutError(f"job {job_id} not finished after {timeout_s}s")

    async def finished_at(self, job_id: str) -> float:
        """When the job finished by its own record (a poll only notices it up to a period later)."""
        async with self.http.get(f"{self.stack.gateway_url}/api/bulk/jobs") as response:
            body = await response.json()
        (job,) = [job for job in body["jobs"] if job["job_id"] == job_id]
        return datetime.fromisoformat(job["finished_at"]).timestamp()

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of every service and server (worker pools included)."""
        pids = {name: process.pid for name, process in self.stack.processes.items()}
        pids |= {name: process.pid for name, process in self.stack.servers.processes.items()}
        return {name: cpu_seconds(pid) + children_cpu_seconds(pid) for name, pid in pids.items()}


@contextmanager
def running_stack(workers: int, **environment: str) -> Any:
    env = {
        **os.environ,
        "BULKOCR_API_TOKENS": f"bench:{TOKEN}",
        "BULKOCR_ENGINE": "null",
        "BULKOCR_INGEST_MAX_PAGES": "20000",
        **environment,
    }
    with tempfile.TemporaryDirectory() as state, LocalStack(Path(state), workers=workers, environment=env) as stack:
        yield stack


async def with_bench(stack: LocalStack, scenario: Callable[[Bench], Any]) -> Any:
    async with aiohttp.ClientSession(headers=HEADERS) as http:
        return await scenario(Bench(stack, http))


async def one_size(bench: Bench, pages: int) -> dict[str, float]:
    tiff = tiff_of(pages)
    before = bench.cpu()
    started = time.time()
    job_id = await bench.submit({f"{pages}-pages.tif": tiff}, dpi="150")
    status = await bench.finished(job_id)
    after = bench.cpu()
    # From the upload to the job's own finishing time: the status poll's period adds nothing.
    seconds = await bench.finished_at(job_id) - started
    if status["status"] != "completed" or status["progress"]["pages_done"] != pages:
        raise RuntimeError(f"the job did not complete: {status}")
    return {
        "pages": pages,
        "seconds": seconds,
        "rate": pages / seconds,
        **{f"{name}_ms_per_page": 1000 * (after[name] - before[name]) / pages for name in after},
    }


def cpu_table(rows: list[dict[str, float]]) -> None:
    names = sorted(key.removesuffix("_ms_per_page") for key in rows[0] if key.endswith("_ms_per_page"))
    print("\n| pages | " + " | ".join(names) + " |")
    print("| ---: |" + " ---: |" * len(names))
    for row in rows:
        print(f"| {row['pages']:,} | " + " | ".join(f"{row[f'{n}_ms_per_page']:.2f}" for n in names) + " |")


def sizes(workers: int, page_counts: list[int], warm_up: int, repeat: int) -> None:
    with running_stack(workers) as stack:
        if warm_up:
            # The stack's first job also pays what a start leaves for later (connections,
            # imports on first use): shown apart, so the sizes compare jobs, not starts.
            first = asyncio.run(with_bench(stack, lambda b: one_size(b, warm_up)))
            print(f"\nfirst job on the fresh stack ({warm_up:,} pages): {first['seconds']:.2f} s")
        rows = []
        for n in page_counts:
            # A 1,000-page job lasts about a second, so one noisy second moves it by a third:
            # each size runs `repeat` times, sizes in turn, and its median run is shown.
            runs = [asyncio.run(with_bench(stack, lambda b, n=n: one_size(b, n))) for _ in range(repeat)]  # type: ignore[misc]
            runs.sort(key=lambda run: run["seconds"])
            print(f"{n:,} pages: " + ", ".join(f"{run['seconds']:.2f} s" for run in runs))
            rows.append(runs[len(runs) // 2])
    print("\n| pages | seconds (median) | pages/s | aggregator CPU ms/page | database CPU ms/page |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['pages']:,} | {row['seconds']:.1f} | {row['rate']:.0f} |"
            f" {row['aggregator_ms_per_page']:.2f} | {row['database_ms_per_page']:.2f} |"
        )
    print(f"\nrate of the largest job / rate of the smallest: {rows[-1]['rate'] / rows[0]['rate']:.2f}")
    print("\nCPU milliseconds per page, by process:")
    cpu_table(rows)


def files(workers: int, count: int) -> None:
    async def scenario(bench: Bench) -> None:
        uploads = {archive_name(index): png_of(index) for index in range(1, count + 1)}
        before = bench.cpu()
        started = time.perf_counter()
        job_id = await bench.submit(uploads, dpi="150")
        uploaded = time.perf_counter() - started
        status = await bench.finished(job_id)
        total = time.perf_counter() - started
        after = bench.cpu()
        _, size = await bench.status(job_id)
        print("\n| files | upload s | files/s uploaded | accepted | completed after s | status | status bytes |")
        print("| ---: | ---: | ---: | --- | ---: | --- | ---: |")
        print(
            f"| {count:,} | {uploaded:.1f} | {count / uploaded:.0f} | yes | {total:.1f} |"
            f" {status['status']} ({status['progress']['pages_done']:,} pages) | {size:,} |"
        )
        print("\nCPU milliseconds per file, by process (upload included):")
        per_file = {f"{name}_ms_per_page": 1000 * (after[name] - before[name]) / count for name in after}
        cpu_table([{"pages": count, **per_file}])

    with running_stack(workers) as stack:
        asyncio.run(with_bench(stack, scenario))


def fair(workers: int, big_pages: int) -> None:
    async def scenario(bench: Bench) -> None:
        big = await bench.submit({"big.tif": tiff_of(big_pages)}, dpi="150")
        await asyncio.sleep(3)
        started = time.perf_counter()
        small = await bench.submit({"small.tif": tiff_of(4)}, dpi="150")
        await bench.finished(small)
        waited = time.perf_counter() - started
        big_status, _ = await bench.status(big)
        progress = big_status["progress"]
        print("\n| small job (4 pages) done after s | big job then | big job pages done |")
        print("| ---: | --- | ---: |")
        print(f"| {waited:.1f} | {big_status['status']} | {progress['pages_done']:,} of {progress['pages_total']:,} |")

    with running_stack(workers, BULKOCR_NULL_SECONDS_PER_PAGE="0.1") as stack:
        asyncio.run(with_bench(stack, scenario))


async def fill(stack: LocalStack, pages: int, per_job: int = 1000) -> None:
    """Store `pages` pages of finished, retained jobs as the pipeline leaves them."""
    settings = MongoSettings(url=stack.servers.addresses.mongo_url)
    async with connect_mongo(settings) as db:
        store = SeedStore(db)
        for number in range(pages // per_job):
            job_id = f"old-{number:04d}"
            job = new_job(job_id, "bench", JobOptions(), 1)
            job["status"], job["finished_at"], job["completed_event_sent"] = "completed", utcnow(), True
            await store.insert_job(job)
            await store.documents.insert_one(
                {"_id": f"{job_id}/d0001", "job_id": job_id, "doc_id": "d0001", "pages": per_job}
            )
            keys = [page_key(job_id, "d0001", page) for page in range(1, per_job + 1)]
            common = {"job_id": job_id, "doc_id": "d0001"}
            await db["pages"].insert_many(
                [{"_id": k, **common, "page": i, "status": "done", "node_id": "n"} for i, k in enumerate(keys, 1)]
            )
            empty = packed_result(PageText(width=1, height=1, engine="null"))
            await db["page_results"].insert_many([{"_id": k, "job_id": job_id, RESULT_PACKED: empty} for k in keys])
            await db["page_tasks"].insert_many(
                [{"_id": k, **common, "page": i, "image": k} for i, k in enumerate(keys, 1)]
            )


def full(workers: int, stored_pages: int) -> None:
    async def small_job(bench: Bench) -> float:
        started = time.perf_counter()
        await bench.finished(await bench.submit({"small.tif": tiff_of(15)}, dpi="150"))
        return time.perf_counter() - started

    with running_stack(workers) as stack:
        empty = [asyncio.run(with_bench(stack, small_job)) for _ in range(3)]
        asyncio.run(fill(stack, stored_pages))
        stored = [asyncio.run(with_bench(stack, small_job)) for _ in range(3)]
    print("\n| database holds | 15-page job s (best of 3) |")
    print("| --- | ---: |")
    print(f"| nothing | {min(empty):.2f} |")
    print(f"| {stored_pages:,} pages of earlier jobs | {min(stored):.2f} |")
    print(f"\nfull / empty: {min(stored) / min(empty):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["sizes", "files", "fair", "full"], action="append")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--warm-up", type=int, default=10, help="pages of a first, unmeasured job (0: none)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each size; the median is shown")
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--big", type=int, default=1000)
    parser.add_argument("--stored", type=int, default=50_000)
    args = parser.parse_args()
    chosen = args.only or ["sizes", "files", "fair", "full"]
    if "sizes" in chosen:
        sizes(args.workers, [int(n) for n in args.sizes.split(",")], args.warm_up, args.repeat)
    if "files" in chosen:
        files(args.workers, args.files)
    if "fair" in chosen:
        fair(args.workers, args.big)
    if "full" in chosen:
        full(args.workers, args.stored)


if __name__ == "__main__":
    main()
