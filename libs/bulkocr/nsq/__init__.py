"""A typed asyncio facade over pynsq: the only package that imports `nsq`.

- `NsqPublisher`: awaitable publish / multi-publish / deferred publish that return once
  nsqd has answered OK, and raise `PublishError` otherwise.
- `consuming(...)`: runs a handler per message. Success means FIN; `PermanentError`, an
  undecodable body or the last allowed attempt means the message goes to the topic's
  dead-letter topic with its cause (then FIN); any other exception means REQ with
  exponential backoff. A message delivered more often than the attempts allowed (its
  earlier deliveries crashed or hung their consumer) is dead-lettered before it runs.
  A handler that did part of its message raises `Unfinished` with the part left: the retry
  and give-up reports then speak of that part only.
  Long handlers are TOUCHed automatically. Leaving the block drains: no new messages,
  in-flight handlers finish (or are given back), then the connections close without
  pynsq's reconnect noise.
- `NsqAdmin`: nsqd's HTTP API (create topics and channels up front, read stats).

pynsq objects bind to the running loop when built, so everything here is created inside
`asyncio.run(...)`, never at import time.
"""

from bulkocr.nsq.admin import NsqAdmin, backlog, create_channels, local_nsqd, nsqd_check
from bulkocr.nsq.consume import Consumer, Delivery, GiveUp, Handler, backoff_delay, consuming
from bulkocr.nsq.publish import NsqPublisher

__all__ = [
    "Consumer",
    "Delivery",
    "GiveUp",
    "Handler",
    "NsqAdmin",
    "NsqPublisher",
    "backlog",
    "backoff_delay",
    "consuming",
    "create_channels",
    "local_nsqd",
    "nsqd_check",
]
