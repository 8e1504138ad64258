"""Pipeline throughput without OCR cost: how fast pages move through gateway, ingest, NSQ,
workers and aggregator on this machine, with the null engine.

    .venv/bin/python bench/bench_pipeline.py --pages 500 --workers 2

It brings the whole system up on loopback (`LocalStack`), submits one generated PDF of N
pages, and reports seconds from upload to `completed`, pages per second, and the time to the
first page done. OCR is the bottleneck in production (seconds a page); this measures the
overhead bulkocr adds around it.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import tempfile
import time
from pathlib import Path

import aiohttp
import pypdfium2 as pdfium  # type: ignore[import-untyped]  # no type information

from bulkocr.stack import LocalStack

TOKEN = "bench"  # noqa: S105  # a throwaway token for a local run


def generated_pdf(pages: int) -> bytes:
    """N letter-size pages (blank pages render as fast as scans of them would split)."""
    document = pdfium.PdfDocument.new()
    for _ in range(pages):
        document.new_page(612, 792)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


async def run_job(stack: LocalStack, pdf: bytes) -> tuple[float, float, dict[str, object]]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        form = aiohttp.FormData()
        form.add_field("files", io.BytesIO(pdf), filename="bench.pdf")
        form.add_field("dpi", "150")
        started = time.perf_counter()
        async with http.post(f"{stack.gateway_url}/api/bulk/jobs", data=form) as response:
            job_id = (await response.json())["job_id"]
        first = 0.0
        while True:
            async with http.get(f"{stack.gateway_url}/api/bulk/status/{job_id}") as response:
                status = await response.json()
            if not first and status["progress"]["pages_done"]:
                first = time.perf_counter() - started
            if status["status"] in ("completed", "partial", "failed"):
                return time.perf_counter() - started, first, status
            await asyncio.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    environment = {**os.environ, "BULKOCR_API_TOKENS": f"bench:{TOKEN}", "BULKOCR_ENGINE": "null"}
    pdf = generated_pdf(args.pages)
    with (
        tempfile.TemporaryDirectory() as state,
        LocalStack(Path(state), workers=args.workers, environment=environment) as stack,
    ):
        seconds, first, status = asyncio.run(run_job(stack, pdf))
    print("| pages | workers | total s | first page s | pages/s | status |")
    print("| ---: | ---: | ---: | ---: | ---: | --- |")
    rate = args.pages / seconds
    print(f"| {args.pages} | {args.workers} | {seconds:.1f} | {first:.1f} | {rate:.1f} | {status['status']} |")


if __name__ == "__main__":
    main()
