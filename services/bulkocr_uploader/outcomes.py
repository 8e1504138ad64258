"""How the documents of one push add up to the push's status. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

DocumentState = Literal["completed", "failed", "staged"]
PushStatus = Literal["completed", "partial", "failed", "staged"]

# The first few document errors are enough to say what went wrong.
_ERRORS_SHOWN = 3


@dataclass(frozen=True)
class Outcome:
    doc_id: str
    state: DocumentState
    error: str | None = None
    transient: bool = False


@dataclass(frozen=True)
class Summary:
    status: PushStatus
    error: str | None = None
    # Some documents failed in a way a later run may get past.
    retry: bool = False


def summarize(outcomes: Sequence[Outcome], *, staged: bool = False) -> Summary:
    """completed (or staged) when every document got through, partial when some did,
    failed when none did."""
    failed = [outcome for outcome in outcomes if outcome.state == "failed"]
    through = len(outcomes) - len(failed)
    error = _errors(failed)
    retry = any(outcome.transient for outcome in failed)
    if not failed:
        return Summary("staged" if staged else "completed")
    return Summary("partial" if through else "failed", error, retry)


def _errors(failed: Sequence[Outcome]) -> str | None:
    if not failed:
        return None
    shown = "; ".join(f"{outcome.doc_id}: {outcome.error}" for outcome in failed[:_ERRORS_SHOWN])
    more = len(failed) - _ERRORS_SHOWN
    return f"{shown} (and {more} more)" if more > 0 else shown
