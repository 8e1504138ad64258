"""The cluster tier: one small cluster (a manager and three nodes in network namespaces,
tests/cluster/harness.py) per test module, put back in shape before each test and removed
after the module, however its tests end. Where namespaces cannot be made (not root, no `ip`,
namespaces refused) the tests fail and say why; they are never skipped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from bulkocr.mongo import connect_mongo
from bulkocr.settings import MongoSettings
from tests.cluster.harness import TOKEN, Cluster
from tests.cluster.netns import HarnessUnavailable
from tests.stores import SeedStore
from tests.waiting import eventually


@pytest.fixture(scope="module")
def running_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        try:
            cluster.start()
        except HarnessUnavailable as error:
            pytest.fail(f"the cluster harness cannot run on this machine: {error}", pytrace=False)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def cluster(running_cluster: Cluster, store: SeedStore) -> Cluster:
    """The module's cluster with every cable in and every node's worker taking pages from the
    manager and heard by the aggregator (its heartbeats come through the node's nsqd)."""
    running_cluster.restore()

    async def ready() -> bool:
        return running_cluster.healthy() and await heard_from_every_worker(running_cluster, store)

    await eventually(ready, timeout_s=90, what="every node's worker taking pages and heard", interval_s=0.25)
    return running_cluster


async def heard_from_every_worker(cluster: Cluster, store: SeedStore) -> bool:
    for name, node in cluster.nodes.items():
        record = await store.nodes.find_one({"_id": node.node_id})
        if record is None or cluster.worker_id(name) not in (record.get("workers") or {}):
            return False
    return True


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        yield session


@pytest.fixture
async def store(running_cluster: Cluster) -> AsyncIterator[SeedStore]:
    async with connect_mongo(MongoSettings(url=running_cluster.mongo_url, timeout_s=5)) as db:
        yield SeedStore(db)
