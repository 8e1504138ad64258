"""The aggregator's gauges: how much work is queued and out, how old the oldest running job
is; read from the coordinator when scraped. (Its write latency is `writes.WRITE_SECONDS`.)"""

from __future__ import annotations

from prometheus_client import Gauge

from bulkocr.contracts import utcnow
from bulkocr_aggregator.coordinator import Coordinator
from bulkocr_aggregator.state import JobState

JOBS_RUNNING = Gauge("bulkocr_jobs_running", "Jobs this aggregator holds that are not finished")
PAGES_WAITING = Gauge("bulkocr_pages_waiting", "Pages ready for OCR, held back by their job's window (not yet on nsqd)")
PAGES_OUT = Gauge("bulkocr_pages_out", "Pages handed to OCR (on nsqd or being read) without an outcome yet")
OLDEST_JOB_SECONDS = Gauge("bulkocr_oldest_running_job_seconds", "Age of the oldest unfinished job since it started")


def observe(jobs: Coordinator) -> None:
    """Bind the gauges to the coordinator's state: each scrape reads it as it is then."""

    def running() -> list[JobState]:
        return [state for state in jobs.jobs.values() if not state.finished]

    def waiting() -> float:
        return float(sum(len(state.page_queue) for state in running()))

    def out() -> float:
        return float(sum(len(state.pages_out) for state in running()))

    JOBS_RUNNING.set_function(lambda: float(len(running())))
    PAGES_WAITING.set_function(waiting)
    PAGES_OUT.set_function(out)

    def oldest() -> float:
        started = [state.started_at for state in running() if state.started_at is not None]
        return (utcnow() - min(started)).total_seconds() if started else 0.0

    OLDEST_JOB_SECONDS.set_function(oldest)
