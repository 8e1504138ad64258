"""Typed keys under which the app and each request keep what handlers need (no globals)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from bulkocr.blobs import BlobStore
from bulkocr.mongo import ArchipelagoStore, DeadLetterStore, GatewayJobStore
from bulkocr.nsq import NsqPublisher
from bulkocr_gateway.feeds import JobFeeds
from bulkocr_gateway.settings import GatewaySettings


@dataclass(frozen=True)
class Deps:
    settings: GatewaySettings
    store: GatewayJobStore
    blobs: BlobStore
    publisher: NsqPublisher
    feeds: JobFeeds = field(default_factory=JobFeeds)


SETTINGS = web.AppKey("settings", GatewaySettings)
STORE = web.AppKey("store", GatewayJobStore)
ARCHIPELAGO = web.AppKey("archipelago", ArchipelagoStore)
DEAD_LETTERS = web.AppKey("dead_letters", DeadLetterStore)
BLOBS = web.AppKey("blobs", BlobStore)
PUBLISHER = web.AppKey("publisher", NsqPublisher)
OWNERS_BY_TOKEN = web.AppKey("owners_by_token", dict[str, str])
PAGE_FILES = web.AppKey("page_files", dict[str, bytes])
"""The web page and the files it loads, by path (page.py)."""

JOB_FEEDS = web.AppKey("job_feeds", JobFeeds)
"""The live event feeds of the jobs someone listens to (events.py)."""

OWNER = web.RequestKey("owner", str)
"""The owner whose token authenticated the request (set by the auth middleware)."""
