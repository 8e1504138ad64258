"""The HTTP gateway: the one HTTP face of bulkocr.

Users submit files (streamed into the blob store, then announced on `bulkocr.job.submitted`),
follow their jobs' progress and read results; everything is read from MongoDB, which the
other services keep up to date. The gateway creates jobs and never updates their progress.
"""

from __future__ import annotations

import aiohttp
import structlog
from aiohttp import web

from bulkocr.blobs import make_blob_store
from bulkocr.contracts import EPHEMERAL, JOB_EVENTS
from bulkocr.mongo import GatewayJobStore, connect_mongo
from bulkocr.nsq import NsqAdmin, NsqPublisher, consuming, nsqd_check
from bulkocr.ops import HEALTH
from bulkocr.runtime import shutdown_event
from bulkocr.service import run_service
from bulkocr.settings import BlobSettings, MongoSettings, NsqSettings
from bulkocr_gateway.app import create_app
from bulkocr_gateway.keys import Deps
from bulkocr_gateway.settings import GatewaySettings

log = structlog.get_logger(__name__)

# Time for requests in progress (an upload, say) to finish once shutdown begins.
SHUTDOWN_GRACE_S = 30.0


async def run(settings: GatewaySettings, nsq: NsqSettings, mongo: MongoSettings, blob: BlobSettings) -> None:
    """Serve until SIGTERM or SIGINT, then stop taking requests and close every client."""
    stop = shutdown_event()
    if not settings.api_tokens:
        log.warning("no_api_tokens", hint="set BULKOCR_API_TOKENS=owner:token,...; every API call will get 401")
    async with connect_mongo(mongo) as db, NsqPublisher(nsq) as publisher, aiohttp.ClientSession() as session:
        HEALTH.depends_on("nsqd", nsqd_check(session, nsq))
        store = GatewayJobStore(db)
        await store.ensure_indexes()
        deps = Deps(settings, store, make_blob_store(blob, db), publisher)
        app = create_app(deps)
        # aiohttp's keep-alive timer runs from the connection's start and from each answer until a
        # whole request has arrived: a client trickling its headers is cut off when it runs out.
        runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_GRACE_S, keepalive_timeout=settings.header_timeout_s)
        await runner.setup()
        # Every gateway hears every job's events: a channel of its own, gone when it goes. The
        # topic is made now, so nsqlookupd knows it before the aggregator first publishes to it.
        await NsqAdmin(session, nsq.nsqd_http_address).create_topic(JOB_EVENTS.name)
        channel = f"gateway-{deps.feeds.epoch}{EPHEMERAL}"
        try:
            async with consuming(JOB_EVENTS, channel, deps.feeds.receive, publisher=publisher, settings=nsq):
                await web.TCPSite(runner, settings.host, settings.port).start()
                HEALTH.started = True
                log.info("service_started", host=settings.host, port=settings.port)
                await stop.wait()
                HEALTH.draining = True
        finally:
            await runner.cleanup()
    log.info("service_stopped")


def main() -> None:
    run_service("gateway", run, GatewaySettings, NsqSettings, MongoSettings, BlobSettings)
