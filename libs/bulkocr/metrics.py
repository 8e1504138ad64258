"""The Prometheus metrics every service shares (each service defines its own beside its code).

Names follow Prometheus conventions: `_total` counters, `_seconds` histograms, base units.
Labels are bounded sets (topics, channels, outcomes, engines), never ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Seconds from a fraction of a millisecond (a tally) to minutes (a dense page on a slow CPU).
SECONDS_BUCKETS = (0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 180.0, 600.0)

MESSAGES = Counter(
    "bulkocr_messages_total",
    "Messages consumed, by how they ended: finished, requeued (to try again), dead_lettered, "
    "rejected (not a valid payload)",
    ["topic", "channel", "outcome"],
)
MESSAGE_SECONDS = Histogram(
    "bulkocr_message_seconds",
    "Time a handler took on one message",
    ["topic", "channel"],
    buckets=SECONDS_BUCKETS,
)
IN_FLIGHT = Gauge("bulkocr_messages_in_flight", "Messages being handled now", ["topic", "channel"])
PUBLISHED = Counter("bulkocr_messages_published_total", "Messages published", ["topic"])
