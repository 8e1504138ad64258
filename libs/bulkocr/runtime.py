"""Process plumbing shared by every service: the shutdown signal."""

from __future__ import annotations

import asyncio
import signal


def shutdown_event() -> asyncio.Event:
    """An event set on SIGTERM or SIGINT (Swarm stops tasks with SIGTERM, then SIGKILL after
    `stop_grace_period`): services stop taking work when it is set, and drain."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, event.set)
    return event
