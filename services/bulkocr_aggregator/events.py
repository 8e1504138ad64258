"""The live feed of each job: what changed since the last flush, published as one
`JobEvents` message per job per flush (`bulkocr.job.events#ephemeral`), which every gateway
streams to the job's listeners. Best effort: a lost message costs a listener a fresh
snapshot, never a count, so a failed publish is logged and dropped, never retried."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bulkocr.contracts import JobEvent, PageDone, PageFailed
from bulkocr.job_events import tell_listeners
from bulkocr.nsq import NsqPublisher
from bulkocr_aggregator.state import JobState

MAX_PAGE_EVENTS = 500
"""Pages named per message; more in one flush are counted (`pages_omitted`), not listed, so
a message stays small however fast a job goes."""


@dataclass
class EventFeed:
    publisher: NsqPublisher
    pages: dict[str, list[JobEvent]] = field(default_factory=dict)
    omitted: dict[str, int] = field(default_factory=dict)

    def page(self, report: PageDone | PageFailed) -> None:
        """Note a page's first outcome for its job's next message."""
        pending = self.pages.setdefault(report.job_id, [])
        if len(pending) >= MAX_PAGE_EVENTS:
            self.omitted[report.job_id] = self.omitted.get(report.job_id, 0) + 1
            return
        data: dict[str, Any] = {"doc_id": report.doc_id, "page": report.page, "node_id": report.node_id}
        if isinstance(report, PageDone):
            data |= {"status": "done", "quality": report.quality.model_dump() if report.quality else None}
        else:
            data |= {"status": "failed", "error": report.error}
        pending.append(JobEvent(kind="page", data=data))

    async def publish(self, state: JobState, fields: dict[str, Any], finished_documents: list[str]) -> None:
        """The job's progress as just stored, the pages and documents that finished since the
        last message, and its end once it has ended."""
        progress = {key: fields[key] for key in ("status", "pages_total", "pages_done", "pages_failed")}
        progress |= {
            "documents_by_status": fields["documents_by_status"],
            "documents_failed_total": fields["documents_failed_total"],
            "nodes": {
                node: {key: value for key, value in tally.items() if key != "last_seen"}
                for node, tally in fields["nodes"].items()
            },
            "pages_omitted": self.omitted.pop(state.job_id, 0),
        }
        events = [JobEvent(kind="progress", data=progress), *self.pages.pop(state.job_id, [])]
        for doc_id in finished_documents:
            document = state.documents[doc_id]
            shown = {"doc_id": doc_id, "pages": document.pages, "error": document.error, **document.progress_fields()}
            events.append(JobEvent(kind="document", data=shown))
        if state.finished:
            events.append(JobEvent(kind="job", data={"status": state.status}))
        await tell_listeners(self.publisher, state.job_id, *events)

    def forget(self, job_id: str) -> None:
        self.pages.pop(job_id, None)
        self.omitted.pop(job_id, None)
