"""The autoscaler's Prometheus metrics, in the process's default registry (the shared
runtime's /metrics serves that registry)."""

from __future__ import annotations

from typing import Literal, get_args

from prometheus_client import Counter, Gauge

Stage = Literal["backlog", "inspect", "policy", "scale"]

BACKLOG = Gauge("bulkocr_autoscaler_backlog_pages", "Pages queued, in flight or deferred for the OCR workers")
CURRENT = Gauge("bulkocr_autoscaler_current_replicas", "Replicas of the scaled service when last read")
DESIRED = Gauge("bulkocr_autoscaler_desired_replicas", "Replicas the last decision asked for")
SCALE_ACTIONS = Counter(
    "bulkocr_autoscaler_scale_actions", "Replica changes made (not in dry run), by direction", ["direction"]
)
ERRORS = Counter(
    "bulkocr_autoscaler_errors",
    "Rounds that failed, by stage: backlog (nsqd), inspect or scale (Engine API), policy (labels)",
    ["stage"],
)

# Every series exists from the start, at zero, so a rate over it is defined before the first event.
for _direction in ("up", "down"):
    SCALE_ACTIONS.labels(direction=_direction)
for _stage in get_args(Stage):
    ERRORS.labels(stage=_stage)


def observed(backlog: int, current: int, desired: int) -> None:
    BACKLOG.set(backlog)
    CURRENT.set(current)
    DESIRED.set(desired)


def scaled(previous: int, replicas: int) -> None:
    SCALE_ACTIONS.labels(direction="up" if replicas > previous else "down").inc()


def failed(stage: Stage) -> None:
    ERRORS.labels(stage=stage).inc()
