"""The uploader as its own process, for tests that kill it: `python -m tests.fakes.uploader_process PDF`.

It is the real service (`bulkocr_uploader.service.run`, settings from the environment and
secret files) with one difference: the searchable PDF of every document is the file given,
so a test needs no page images (tests/integration/test_uploader.py covers the real PDF).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bulkocr.blobs import make_blob_store
from bulkocr.log import configure_logging
from bulkocr.mongo import JobStore, connect_mongo
from bulkocr.settings import BlobSettings, LogSettings, MongoSettings, NsqSettings, load
from bulkocr_uploader.outputs import StoredOutputs
from bulkocr_uploader.service import run
from bulkocr_uploader.settings import UploaderSettings


async def main(pdf: bytes) -> None:
    mongo, blob = load(MongoSettings), load(BlobSettings)
    async with connect_mongo(mongo) as db:
        texts = StoredOutputs(JobStore(db), make_blob_store(blob, db))

        async def fetch_output(job_id: str, doc_id: str, fmt: str) -> bytes:
            return pdf if fmt == "pdf" else await texts(job_id, doc_id, fmt)

        await run(load(UploaderSettings), load(NsqSettings), mongo, blob, fetch_output=fetch_output)


if __name__ == "__main__":
    configure_logging(load(LogSettings), service="uploader")
    asyncio.run(main(Path(sys.argv[1]).read_bytes()))
