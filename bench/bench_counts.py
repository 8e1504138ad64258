"""Why page results live apart from page outcomes: the cost of counting a job's pages on the
database when each outcome document carries a dense page's OCR result, and when it does not.

    .venv/bin/python bench/bench_counts.py --pages 2000

Starts the project's own FerretDB (or mongod) on loopback, stores N outcome documents with a
50 KB result each and N without, and times `count_documents({"job_id", "status"})` on both.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from bulkocr_devstack.servers import LocalServers


async def count_seconds(url: str, pages: int) -> tuple[float, float]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        database = client["bench"]
        dense = {"blocks": [{"text": "x" * 50_000}]}
        for name, extra in (("with_results", {"result": dense}), ("outcomes_only", {})):
            documents = [{"_id": f"j/d/{n}", "job_id": "j", "status": "done", **extra} for n in range(pages)]
            for start in range(0, pages, 200):
                await database[name].insert_many(documents[start : start + 200])
            await database[name].create_index([("job_id", 1), ("status", 1)])
        timings = []
        for name in ("with_results", "outcomes_only"):
            started = time.perf_counter()
            for _ in range(3):
                await database[name].count_documents({"job_id": "j", "status": "done"})
            timings.append((time.perf_counter() - started) / 3)
        return timings[0], timings[1]
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data, LocalServers(Path(data)) as servers:
        dense, small = asyncio.run(count_seconds(servers.addresses.mongo_url, args.pages))
    print("| pages | database | count, results inline (s) | count, outcomes only (s) | ratio |")
    print("| ---: | --- | ---: | ---: | ---: |")
    print(f"| {args.pages} | {servers.database_kind} | {dense:.3f} | {small:.3f} | {dense / small:.0f} |")


if __name__ == "__main__":
    main()
