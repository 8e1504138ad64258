"""The store tests lay a database out with: every service's writes in one object, as the
services together leave the database (each service holds only its own store)."""

from __future__ import annotations

from bulkocr.mongo import AggregatorJobStore, GatewayJobStore, IngestJobStore


class SeedStore(GatewayJobStore, IngestJobStore, AggregatorJobStore):
    """Jobs submitted, split, and read, written the way their owning services write them."""
