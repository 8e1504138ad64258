"""How many of a job's pages go to a worker in one message.

A message costs about a millisecond of CPU between nsqd, the worker and the aggregator,
whatever it carries. For real OCR (seconds a page) that is nothing, and one page a message
spreads the pages best over the workers and retries one page at a time. For pages read in
milliseconds (blank or tiny pages, the null engine) the messages cost more than the pages,
so the job's pages go in batches of about `seconds` of reading, at most `most` pages.

The size follows the job's own pages: a moving average of the time the last pages took
(reported by the workers). A job starts at the pace its engine's latest pages were read at
in this aggregator, or one page a message when it knows none: otherwise a job of quick
pages sent its first window (200 pages) one a message, about a fifth of a second of CPU on
a 1,000-page job that takes a second. A job slower than the last one corrects the size
with its first page back (that page replaces the guess); until then it has at most `most`
pages in a message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bulkocr.contracts import PageBatch, PageTask

SMOOTHING = 0.2
"""Weight of the newest page in the moving average: about the last ten pages count."""


@dataclass
class BatchSizer:
    seconds: float = 0.2
    most: int = 32
    page_seconds: float | None = None
    """The job's own estimate, None until its first page is read."""
    engine: str = ""
    engine_pace: dict[str, float] = field(default_factory=dict)
    """Each engine's latest estimate, shared by the sizers of one aggregator's jobs."""

    def observe(self, seconds: float) -> None:
        """A page of the job was read in `seconds` (fetching its image included)."""
        if self.page_seconds is None:
            self.page_seconds = seconds
        else:
            self.page_seconds += SMOOTHING * (seconds - self.page_seconds)
        self.engine_pace[self.engine] = self.page_seconds

    @property
    def size(self) -> int:
        page_seconds = self.engine_pace.get(self.engine) if self.page_seconds is None else self.page_seconds
        if page_seconds is None or self.seconds <= 0:
            return 1
        if page_seconds <= 0:
            return self.most
        return max(1, min(self.most, int(self.seconds / page_seconds)))

    def batches(self, job_id: str, tasks: Sequence[PageTask]) -> list[PageBatch]:
        """The tasks in order, in batches of the current size."""
        size = self.size
        return [PageBatch(job_id=job_id, tasks=tuple(tasks[at : at + size])) for at in range(0, len(tasks), size)]
