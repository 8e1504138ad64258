"""Process plumbing shared by every service: the shutdown signal, child processes that die
with their service."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_AUTOGROUP_TRIES = 20


def shutdown_event() -> asyncio.Event:
    """An event set on SIGTERM or SIGINT (Swarm stops tasks with SIGTERM, then SIGKILL after
    `stop_grace_period`): services stop taking work when it is set, and drain."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, event.set)
    return event


def die_with_parent(parent: int) -> None:
    """Call first thing in a child process: Linux kills it when the service that started it
    dies, however it dies (a SIGKILL leaves no chance to clean up); exit now if it is already
    gone."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def lower_priority(by: int) -> None:
    """Raise this process's niceness by `by`, so that it yields the CPU to every process of
    the host at the usual niceness, not only to those of its own session."""
    niceness = os.nice(by)
    autogroup = Path("/proc/self/autogroup")
    if by <= 0 or not autogroup.exists():
        return
    # With autogroup scheduling (the default of most distributions), the kernel first shares
    # the CPU between sessions, and niceness only ranks the processes within one: a niced
    # child of a service would still take its session's full share from the OCR processes.
    # Its own session, at its niceness, yields as a niced process should.
    try:
        os.setsid()
    except OSError:
        return  # a session leader already: plain niceness still holds
    for _ in range(_AUTOGROUP_TRIES):
        try:
            autogroup.write_text(str(niceness))
            return
        except BlockingIOError:
            # EAGAIN: the kernel takes one such change every 100 ms from unprivileged
            # processes, and split processes start together.
            time.sleep(0.1)
        except OSError:
            return  # refused: plain niceness still holds
