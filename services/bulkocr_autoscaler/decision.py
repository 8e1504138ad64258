"""How many OCR workers a backlog of pages asks for: a pure function of the backlog, the
current replicas, the policy and the time of the last change, so it can be tested alone.

The rules, in the order they apply:
- bounds: replicas stay within [min, max]; 0 only where scale to zero is allowed and
  nothing is queued, in flight or deferred. A count outside the bounds (set by hand, or
  zero workers while pages wait) is corrected at once, whatever the cooldowns say;
- the want: ceil(backlog / target), clamped to the bounds;
- up: to the want, once the (short) up cooldown has passed since the last change;
- down: to the want, once the (long) down cooldown has passed, and only when the backlog
  is below (current - 1) x target x (1 - hysteresis): a backlog hovering around a
  boundary does not add and remove a worker every round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Reason = Literal[
    "steady",
    "scale_up",
    "scale_down",
    "up_cooldown",
    "down_cooldown",
    "hysteresis",
    "below_minimum",
    "above_maximum",
]


class PolicyError(ValueError):
    """A policy that cannot be followed (bad bounds, target or band)."""


@dataclass(frozen=True)
class Policy:
    """The bounds and pace of scaling for one service."""

    min_replicas: int
    max_replicas: int
    target: int  # pages per worker
    scale_to_zero: bool = False
    hysteresis: float = 0.2
    up_cooldown_s: float = 30.0
    down_cooldown_s: float = 300.0

    def __post_init__(self) -> None:
        if self.min_replicas < 1:
            raise PolicyError(f"min {self.min_replicas} is below 1 (scale to zero is its own setting)")
        if self.max_replicas < self.min_replicas:
            raise PolicyError(f"max {self.max_replicas} is below min {self.min_replicas}")
        if self.target < 1:
            raise PolicyError(f"target {self.target} pages per worker is below 1")
        if not 0 <= self.hysteresis < 1:
            raise PolicyError(f"hysteresis {self.hysteresis} is outside [0, 1)")
        if self.up_cooldown_s < 0 or self.down_cooldown_s < 0:
            raise PolicyError("a cooldown is negative")


@dataclass(frozen=True)
class Decision:
    desired: int
    reason: Reason


def lower_bound(backlog: int, policy: Policy) -> int:
    """The fewest replicas allowed: zero only when allowed and nothing is waiting."""
    return 0 if policy.scale_to_zero and backlog == 0 else policy.min_replicas


def want(backlog: int, policy: Policy) -> int:
    """The replicas the backlog alone asks for, within the bounds."""
    needed = math.ceil(backlog / policy.target)
    return max(lower_bound(backlog, policy), min(policy.max_replicas, needed))


def decide(backlog: int, current: int, policy: Policy, *, now: float, last_change: float | None) -> Decision:
    """The replicas to run now. `now` and `last_change` are on one monotonic clock;
    `last_change` is None when no change is known (the cooldowns have passed)."""
    if backlog < 0 or current < 0:
        raise ValueError(f"negative backlog {backlog} or replicas {current}")
    wanted = want(backlog, policy)
    if current < lower_bound(backlog, policy):
        return Decision(wanted, "below_minimum")
    if current > policy.max_replicas:
        return Decision(policy.max_replicas, "above_maximum")
    since = math.inf if last_change is None else now - last_change
    if wanted > current:
        return Decision(wanted, "scale_up") if since >= policy.up_cooldown_s else Decision(current, "up_cooldown")
    if wanted < current:
        band = (current - 1) * policy.target * (1 - policy.hysteresis)
        if backlog > 0 and backlog >= band:
            return Decision(current, "hysteresis")
        if since < policy.down_cooldown_s:
            return Decision(current, "down_cooldown")
        return Decision(wanted, "scale_down")
    return Decision(current, "steady")
