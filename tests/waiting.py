"""Wait on a condition with a deadline, never with a fixed sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    timeout_s: float = 20.0,
    what: str = "condition",
    interval_s: float = 0.05,
) -> None:
    """Poll `condition` until it is true; fail with `what` after the deadline. A condition that
    asks a running service (a job's status) is polled less often (`interval_s`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)
