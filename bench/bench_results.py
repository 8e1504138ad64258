"""What storing and reading page results costs the database (FerretDB on `bulkocr up`).

OCRs linn.png once (a dense book page, about 2,600 words), then stores it as N pages of one
document in two fresh collections: as results are stored now (compressed JSON in one binary
field) and as an earlier version stored them (a nested document). Each is then read back the
way the text and JSON downloads, the outputs and the uploader read a document
(`JobStore.get_pages`). Prints the database's CPU milliseconds per page for each, and the
stored bytes per page.

    .venv/bin/python bench/bench_results.py --pages 56
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_pipeline import cpu_seconds

from bulkocr.contracts import PageDone, PageTimings
from bulkocr.mongo import AggregatorJobStore, JobStore, connect_mongo, outcome_records
from bulkocr.settings import MongoSettings
from bulkocr_devstack.servers import LocalServers
from bulkocr_ocr_worker.engines import make_engine, read_page

TEST_DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def done_page(job_id: str, page: int, engine_page: PageDone) -> PageDone:
    return engine_page.model_copy(update={"job_id": job_id, "page": page})


async def measure(servers: LocalServers, template: PageDone, pages: int) -> None:
    database = servers.processes["database"].pid
    async with connect_mongo(MongoSettings(url=servers.addresses.mongo_url)) as db:
        store, jobs = AggregatorJobStore(db), JobStore(db)
        print("\n| results stored as | write ms/page | read ms/page | KiB/page |")
        print("| --- | ---: | ---: | ---: |")
        for label, job_id in (("compressed JSON (now)", "packed"), ("nested document (before)", "nested")):
            reports = [done_page(job_id, page, template) for page in range(1, pages + 1)]
            before = cpu_seconds(database)
            for report in reports:
                records = dict(outcome_records(report))
                if job_id == "nested":  # what an earlier version wrote
                    assert report.result is not None
                    records["page_results"] = {"_id": records["page_results"]["_id"], "job_id": job_id}
                    records["page_results"] |= {"result": report.result.model_dump(), "result_blob": None}
                for collection, record in records.items():
                    await db[collection].insert_one(record)
            written = cpu_seconds(database) - before
            before = cpu_seconds(database)
            read = await jobs.get_pages(job_id, "d0001")
            reading = cpu_seconds(database) - before
            assert len(read) == pages
            assert all(page["result"] for page in read)
            stats = await db.command("collStats", "page_results")
            size = stats["size"] / (await store.page_results.count_documents({}))
            print(f"| {label} | {1000 * written / pages:.1f} | {1000 * reading / pages:.1f} | {size / 1024:.1f} |")
            await store.page_results.delete_many({})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=56)
    args = parser.parse_args()
    started = time.perf_counter()
    with Image.open(TEST_DATA / "linn.png") as image:
        page = read_page(make_engine("rapidocr"), image.convert("L"), language=None, dpi=300)
    template = PageDone(
        job_id="j", doc_id="d0001", page=1, node_id="n", worker_id="w", attempts=1, timings=PageTimings(), result=page
    )
    print(f"OCR of linn.png: {time.perf_counter() - started:.1f} s, {len(page.model_dump_json()) // 1024} KiB of JSON")
    with tempfile.TemporaryDirectory() as folder, LocalServers(Path(folder)) as servers:
        asyncio.run(measure(servers, template, args.pages))


if __name__ == "__main__":
    main()
