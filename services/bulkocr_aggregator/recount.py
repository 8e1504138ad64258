"""A job's tallies in memory against its stored outcomes: how a take-over seeds them, and the
slow check's comparison."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from bulkocr.mongo import Document
from bulkocr_aggregator.document_state import PageOutcome, page_id
from bulkocr_aggregator.state import JobState


@dataclass(frozen=True)
class Recount:
    """What differed, by page key."""

    late: list[str]
    """Stored but not counted, and written before this process took the job over: the previous
    owner's writes that were on their way when it died and committed after the take-over's
    scan. Counting them (done) is the expected end of a crash, not drift."""
    uncounted: list[str]
    """Stored but not counted, written since (counted now; drift)."""
    unstored: list[str]
    """Counted but not stored (drift)."""

    @property
    def differed(self) -> int:
        return len(self.late) + len(self.uncounted) + len(self.unstored)


def recount(state: JobState, pages: Iterable[Document]) -> Recount:
    """Compare the state with the job's stored page records and count the outcomes it missed."""
    stored = {page_id(p["doc_id"], int(p["page"])): p for p in pages if p["status"] in ("done", "failed")}
    missed = [key for key in stored if key not in state.outcomes]
    unstored = [key for key in state.outcomes if key not in stored and key not in state.applied_since_check]
    for key in missed:
        page = stored[key]
        outcome = PageOutcome(page["status"], page.get("node_id") or "unknown", float(page.get("busy_s") or 0))
        state.record(page["doc_id"], int(page["page"]), outcome, error=page.get("error"))
    late = [key for key in missed if _before(stored[key].get("finished_at"), state.taken_over_at)]
    return Recount(late, [key for key in missed if key not in late], unstored)


def _before(moment: datetime | None, limit: datetime | None) -> bool:
    return moment is not None and limit is not None and moment < limit  # both aware: the client is tz_aware
