"""A process that lowers its priority yields to the host's other processes, even when several
do it at once without privileges (as ingest's split processes do when ingest starts)."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
from multiprocessing.connection import Connection
from pathlib import Path

from bulkocr.runtime import lower_priority

NOBODY = 65534
PR_SET_DUMPABLE = 4
AUTOGROUP = Path("/proc/self/autogroup")


def _lowered(connection: Connection) -> None:
    lower_priority(10)
    connection.send((os.getpriority(os.PRIO_PROCESS, 0), AUTOGROUP.read_text().split()[-1]))


def _three_at_once_unprivileged(connection: Connection) -> None:
    if os.geteuid() == 0:
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        # A process that changed its user has its /proc files owned by root until it says
        # otherwise; one started as nobody owns them.
        ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 1)
    context = multiprocessing.get_context("fork")  # no new interpreter: nobody may not read the venv
    pipes = [context.Pipe(duplex=False) for _ in range(3)]
    children = [context.Process(target=_lowered, args=(sender,)) for _, sender in pipes]
    for child in children:
        child.start()
    connection.send([receiver.recv() for receiver, _ in pipes])
    for child in children:
        child.join()


def test_processes_that_lower_their_priority_together_unprivileged_each_yield():
    """The kernel takes one autogroup change every 100 ms from an unprivileged process: the
    ones refused at first try again, instead of leading a session at full weight."""
    receiver, sender = multiprocessing.Pipe(duplex=False)
    parent = multiprocessing.get_context("fork").Process(target=_three_at_once_unprivileged, args=(sender,))
    parent.start()
    lowered = receiver.recv()
    parent.join()
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert [niceness for niceness, _ in lowered] == [base + 10] * 3
    if AUTOGROUP.exists():
        assert [group_niceness for _, group_niceness in lowered] == [str(base + 10)] * 3
