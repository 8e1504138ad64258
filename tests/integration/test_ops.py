"""The ops routes every service serves: readiness follows the real nsqd and database a service
depends on and turns false while draining; liveness fails once a loop the service needs dies."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from bulkocr.mongo import Database, connect_mongo
from bulkocr.nsq import NsqPublisher, nsqd_check
from bulkocr.ops import HEALTH, Health, OpsSettings, ops_server
from bulkocr.service import serve
from bulkocr.settings import MongoSettings, NsqSettings
from tests.waiting import eventually

pytestmark = pytest.mark.integration

LOCAL = OpsSettings(host="127.0.0.1", port=0, check_timeout_s=2.0)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def process_health() -> Iterator[Health]:
    """The process-wide HEALTH as a fresh service would start with it, restored afterwards."""
    saved = (dict(HEALTH.checks), HEALTH.started, HEALTH.draining, HEALTH.broken)
    HEALTH.checks.clear()
    HEALTH.started, HEALTH.draining, HEALTH.broken = False, False, None
    yield HEALTH
    HEALTH.checks.clear()
    HEALTH.checks.update(saved[0])
    HEALTH.started, HEALTH.draining, HEALTH.broken = saved[1:]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def answer(http: aiohttp.ClientSession, port: int, probe: str) -> tuple[int, dict[str, Any]]:
    async with http.get(f"http://127.0.0.1:{port}/{probe}") as response:
        return response.status, await response.json()


async def test_readiness_names_each_dependency_that_is_down(
    http: aiohttp.ClientSession, nsq_settings: NsqSettings, mongo_settings: MongoSettings, db: Database
):
    """Ready while the real nsqd and database answer; an nsqd that does not answer makes the
    service unready with a reason under its name, the others still reported fine."""
    health = Health(started=True)
    health.depends_on("nsqd", nsqd_check(http, nsq_settings))
    health.depends_on("database", lambda: db.command("ping"))
    async with ops_server(LOCAL, health) as port:
        assert await answer(http, port, "readyz") == (200, {"status": "ready", "checks": ["database", "nsqd"]})
        gone = nsq_settings.model_copy(update={"nsqd_http_address": f"127.0.0.1:{closed_port()}"})
        health.depends_on("nsqd", nsqd_check(http, gone))
        status, body = await answer(http, port, "readyz")
        assert status == 503
        assert list(body["reasons"]) == ["nsqd"]
        assert "ClientConnectorError" in body["reasons"]["nsqd"]
        assert await answer(http, port, "livez") == (200, {"status": "alive"})


async def test_a_database_that_never_answers_times_out_as_unready(http: aiohttp.ClientSession):
    """A check that hangs (a database behind a dead network) is cut at the check timeout."""
    unreachable = MongoSettings(url=f"mongodb://127.0.0.1:{closed_port()}", timeout_s=30)
    health = Health(started=True)
    settings = LOCAL.model_copy(update={"check_timeout_s": 0.5})
    async with connect_mongo(unreachable) as db, ops_server(settings, health) as port:
        health.depends_on("database", lambda: db.command("ping"))
        assert await answer(http, port, "readyz") == (
            503,
            {"status": "unready", "reasons": {"database": "no answer within 0.5 s"}},
        )


async def test_a_service_is_ready_while_serving_then_draining_and_a_dead_loop_fails_liveness(
    process_health: Health, http: aiohttp.ClientSession, nsq_settings: NsqSettings, mongo_settings: MongoSettings
):
    """Through `serve()`, as every service runs: unready while starting, ready once consuming
    (nsqd and the database registered by the runtime and the adapter), not live once its
    background loop has died, unready while draining."""
    stop, crash = asyncio.Event(), asyncio.Event()

    async def dispatcher() -> None:
        await crash.wait()
        raise RuntimeError("lost its state")

    async with ops_server(LOCAL) as port:
        assert (await answer(http, port, "readyz"))[1]["reasons"] == {"service": "starting"}
        async with connect_mongo(mongo_settings), NsqPublisher(nsq_settings) as publisher:
            serving = asyncio.create_task(
                serve(nsq=nsq_settings, publisher=publisher, subscriptions=[], background=[dispatcher()], stop=stop)
            )
            await eventually(lambda: process_health.started, what="the service to start")
            assert await answer(http, port, "readyz") == (200, {"status": "ready", "checks": ["database", "nsqd"]})
            crash.set()
            await eventually(lambda: process_health.broken is not None, what="the dispatcher to die")
            status, body = await answer(http, port, "livez")
            assert status == 503
            assert "dispatcher" in body["reason"]
            assert "lost its state" in body["reason"]
            stop.set()
            await serving
            assert (await answer(http, port, "readyz"))[1]["reasons"] == {"service": "draining"}
