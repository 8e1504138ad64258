"""The integration tier: what needs more than pure code. Real servers (nsqlookupd, nsqd,
nsqadmin and FerretDB or mongod), built by `make servers` and started here on free loopback
ports; child processes (the OCR and split pools, the docker client); and the real OCR engine.
A server that cannot start fails the tests that need it; nothing is skipped and nothing is
faked. The unit tier (tests/unit) has no sockets, no child processes and no model inference."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bulkocr.blobs import BlobStore, make_blob_store
from bulkocr.contracts import EPHEMERAL, JOB_EVENTS
from bulkocr.mongo import Database, connect_mongo
from bulkocr.nsq import NsqAdmin, NsqPublisher, consuming
from bulkocr.settings import BlobSettings, MongoSettings, NsqSettings
from bulkocr_aggregator.coordinator import Coordinator
from bulkocr_aggregator.state import Windows
from bulkocr_aggregator.writes import batch_writer
from bulkocr_devstack.servers import LocalServers
from bulkocr_gateway.app import create_app
from bulkocr_gateway.feeds import JobFeeds
from bulkocr_gateway.keys import JOB_FEEDS, Deps
from bulkocr_gateway.settings import GatewaySettings
from tests.stores import SeedStore

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServers]:
    with LocalServers(tmp_path_factory.mktemp("servers")) as running:
        yield running


def nsq_settings_for(servers: LocalServers, **overrides: object) -> NsqSettings:
    a = servers.addresses
    values: dict[str, object] = {
        "nsqd_tcp_addresses": [f"{a.host}:{a.nsqd_tcp}"],
        "nsqd_http_address": f"{a.host}:{a.nsqd_http}",
        "lookupd_http_addresses": [f"{a.host}:{a.nsqlookupd_http}"],
        "lookupd_poll_interval_s": 1,
        "backoff_base_s": 0.2,
        "backoff_max_s": 2.0,
        "drain_timeout_s": 10.0,
        "publish_timeout_s": 5.0,
        "connect_timeout_s": 10.0,
        "reconnect_interval_s": 0.2,
        **overrides,
    }
    return NsqSettings.model_validate(values)


@pytest.fixture
def nsq_settings(servers: LocalServers) -> NsqSettings:
    return nsq_settings_for(servers)


@pytest.fixture
def topic_name() -> str:
    """A topic of its own for each test, so tests never see each other's messages."""
    return f"test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def publisher(nsq_settings: NsqSettings) -> AsyncIterator[NsqPublisher]:
    async with NsqPublisher(nsq_settings) as connected:
        yield connected


@pytest.fixture
async def nsq_admin(nsq_settings: NsqSettings) -> AsyncIterator[NsqAdmin]:
    async with aiohttp.ClientSession() as session:
        yield NsqAdmin(session, nsq_settings.nsqd_http_address)


@pytest.fixture
def mongo_settings(servers: LocalServers) -> MongoSettings:
    return MongoSettings(url=servers.addresses.mongo_url, database=f"test_{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def db(mongo_settings: MongoSettings) -> AsyncIterator[Database]:
    async with connect_mongo(mongo_settings) as database:
        yield database
        await database.client.drop_database(database.name)


@pytest.fixture
async def store(db: Database) -> SeedStore:
    job_store = SeedStore(db)
    await job_store.ensure_indexes()
    return job_store


Client = TestClient[web.Request, web.Application]
GATEWAY_TOKENS = {"alice": "alice-token", "bob": "bob-token"}


@pytest.fixture
def blobs(db: Database) -> BlobStore:
    return make_blob_store(BlobSettings(), db)


@pytest.fixture
async def start_gateway(store, blobs, publisher) -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    """Start the gateway app in-process on a free port, with settings overridden per test."""
    started: list[Client] = []

    async def start(**overrides: object) -> Client:
        settings = GatewaySettings.model_validate({"api_tokens": GATEWAY_TOKENS, **overrides})
        test_client: Client = TestClient(TestServer(create_app(Deps(settings, store, blobs, publisher))))
        await test_client.start_server()
        started.append(test_client)
        return test_client

    yield start
    for test_client in started:
        await test_client.close()


@pytest.fixture
async def api(start_gateway) -> Client:
    started: Client = await start_gateway()
    return started


@pytest.fixture
async def jobs(store: SeedStore, db: Database, publisher: NsqPublisher) -> AsyncIterator[Coordinator]:
    """The aggregator's coordinator on the real servers, handing out work as it runs."""
    async with batch_writer(db) as writer:
        coordinator = Coordinator(store, writer, publisher, Windows(pages=200, documents=4))
        dispatching = asyncio.create_task(coordinator.dispatch_forever())
        yield coordinator
        dispatching.cancel()


@pytest.fixture
async def feeds(
    start_gateway, publisher: NsqPublisher, nsq_settings: NsqSettings, nsq_admin: NsqAdmin
) -> AsyncIterator[tuple[Any, JobFeeds]]:
    """A gateway reading the job events feed on a channel of its own, as the service does."""
    api = await start_gateway()
    await nsq_admin.create_topic(JOB_EVENTS.name)
    job_feeds = api.server.app[JOB_FEEDS]
    channel = f"test-{uuid.uuid4().hex[:8]}{EPHEMERAL}"
    async with consuming(JOB_EVENTS, channel, job_feeds.receive, publisher=publisher, settings=nsq_settings) as feed:
        await feed.wait_connected()
        yield api, job_feeds
