"""A service's scaling policy from its labels (`deploy.labels` in a stack file, which Swarm
keeps as the service's `Spec.Labels`), with the autoscaler's settings as defaults.

    bulkocr.autoscale: "true"          opt in; any other value (or none) leaves the service alone
    bulkocr.autoscale.min: "1"         fewest replicas while pages wait
    bulkocr.autoscale.max: "16"        most replicas
    bulkocr.autoscale.target: "20"     pages (queued, in flight or deferred) per replica
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from bulkocr_autoscaler.decision import Policy, PolicyError

PREFIX = "bulkocr.autoscale"
OPT_IN = PREFIX
MIN = f"{PREFIX}.min"
MAX = f"{PREFIX}.max"
TARGET = f"{PREFIX}.target"
WHOLE_NUMBER = re.compile(r"[0-9]{1,6}")


def opted_in(labels: Mapping[str, str]) -> bool:
    return labels.get(OPT_IN, "").strip().lower() == "true"


def policy_from_labels(labels: Mapping[str, str], defaults: Policy) -> Policy | None:
    """The policy the labels set over `defaults`, or None for a service that has not opted in.
    A label that is not a whole number, or bounds that contradict each other, raise `PolicyError`."""
    if not opted_in(labels):
        return None
    return replace(  # Policy checks the bounds as it is built
        defaults,
        min_replicas=_whole_number(labels, MIN, defaults.min_replicas),
        max_replicas=_whole_number(labels, MAX, defaults.max_replicas),
        target=_whole_number(labels, TARGET, defaults.target),
    )


def _whole_number(labels: Mapping[str, str], label: str, default: int) -> int:
    if label not in labels:
        return default
    text = labels[label].strip()
    if not WHOLE_NUMBER.fullmatch(text):
        raise PolicyError(f"label {label}={labels[label]!r} is not a whole number")
    return int(text)
