"""A consumer whose handler kills its own process, as an out-of-memory kill or a native crash
in a parser would: `python -m tests.fakes.crashing_consumer TOPIC CHANNEL REPORT`.

The NSQ adapter is the real one, with settings from the environment. Each delivery the
handler sees and each give-up the adapter reports is appended to REPORT as one line.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bulkocr.contracts import Message, Topic
from bulkocr.nsq import Delivery, NsqPublisher, consuming
from bulkocr.settings import NsqSettings, load


class Crash(Message):
    n: int


def report(path: Path, line: str) -> None:
    with path.open("a") as file:
        file.write(line + "\n")


async def main(topic: Topic[Crash], channel: str, path: Path) -> None:
    settings = load(NsqSettings)

    async def crash(message: Crash, delivery: Delivery) -> None:
        report(path, f"attempt {delivery.attempts}")
        os._exit(137)  # no FIN, no REQ: the connection just ends, as with the kernel's OOM killer

    async def give_up(message: Crash, cause: str, attempts: int) -> None:
        report(path, f"gave up: {cause}")

    async with (
        NsqPublisher(settings) as publisher,
        consuming(topic, channel, crash, publisher=publisher, settings=settings, on_give_up=give_up),
    ):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Topic(sys.argv[1], Crash), sys.argv[2], Path(sys.argv[3])))
