"""The autoscaler's decision, as properties over every backlog, replica count, policy and
clock: bounds, no zero without scale to zero and an empty queue, no flapping, monotone in
the backlog, cooldowns respected; and a few worked examples."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkocr_autoscaler.decision import Decision, Policy, PolicyError, decide

# No example database in the checkout; no deadline on a shared, busy machine.
PROPERTY = settings(max_examples=400, database=None, deadline=None)

policies = st.builds(
    lambda low, extra, target, zero, band, up, down: Policy(
        min_replicas=low,
        max_replicas=low + extra,
        target=target,
        scale_to_zero=zero,
        hysteresis=band,
        up_cooldown_s=up,
        down_cooldown_s=down,
    ),
    low=st.integers(1, 8),
    extra=st.integers(0, 24),
    target=st.integers(1, 200),
    zero=st.booleans(),
    band=st.floats(0, 0.95),
    up=st.floats(0, 120),
    down=st.floats(0, 1200),
)
backlogs = st.one_of(st.integers(0, 50), st.integers(0, 1_000_000))
replicas = st.integers(0, 40)
NOW = 10_000.0
# How long ago the last change was: often within a cooldown, sometimes never.
last_changes = st.one_of(st.none(), st.floats(0, 1500).map(lambda ago: NOW - ago))


def lowest(backlog: int, policy: Policy) -> int:
    return 0 if policy.scale_to_zero and backlog == 0 else policy.min_replicas


@PROPERTY
@given(backlog=backlogs, current=replicas, policy=policies, last_change=last_changes)
def test_never_outside_the_bounds(backlog, current, policy, last_change):
    """Whatever the backlog, the replicas now running and the clock, the decision stays
    within [min, max], or is 0 where scale to zero is allowed and nothing waits."""
    desired = decide(backlog, current, policy, now=NOW, last_change=last_change).desired
    assert lowest(backlog, policy) <= desired <= policy.max_replicas


@PROPERTY
@given(backlog=backlogs, current=replicas, policy=policies, last_change=last_changes)
def test_zero_only_with_scale_to_zero_and_nothing_waiting(backlog, current, policy, last_change):
    """No worker at all is decided only when it is allowed and no page is queued, in flight
    or deferred; zero workers with pages waiting are raised at once, cooldown or not."""
    desired = decide(backlog, current, policy, now=NOW, last_change=last_change).desired
    if desired == 0:
        assert policy.scale_to_zero
        assert backlog == 0
    if backlog > 0:
        assert desired >= 1


@PROPERTY
@given(backlog=backlogs, start=replicas, policy=policies)
def test_a_steady_backlog_settles_on_one_count_and_stays(backlog, start, policy):
    """Deciding again and again on the same backlog (every cooldown passed between rounds)
    changes the count at most twice (into the bounds, then to the want) and, once a round
    keeps it, every later round keeps it."""
    current, now = start, NOW
    counts = [current]
    for _ in range(8):
        now += max(policy.up_cooldown_s, policy.down_cooldown_s) + 1
        current = decide(backlog, current, policy, now=now, last_change=now - 1e9).desired
        counts.append(current)
    changes = sum(1 for before, after in itertools.pairwise(counts) if before != after)
    assert changes <= 2, counts
    settled = next(i for i in range(1, len(counts)) if counts[i] == counts[i - 1])
    assert len(set(counts[settled:])) == 1, counts


@PROPERTY
@given(low=backlogs, high=backlogs, current=replicas, policy=policies, last_change=last_changes)
def test_more_backlog_never_asks_for_fewer_workers(low, high, current, policy, last_change):
    """For the same replicas, policy and clock, a larger backlog never decides fewer replicas."""
    low, high = sorted((low, high))
    fewer = decide(low, current, policy, now=NOW, last_change=last_change).desired
    more = decide(high, current, policy, now=NOW, last_change=last_change).desired
    assert fewer <= more


@PROPERTY
@given(backlog=backlogs, current=replicas, policy=policies, last_change=last_changes)
def test_cooldowns_are_respected(backlog, current, policy, last_change):
    """From a count within the bounds, a rise comes only once the up cooldown has passed
    since the last change, a cut only once the down cooldown has."""
    if not lowest(backlog, policy) <= current <= policy.max_replicas:
        return  # a count outside the bounds is corrected at once: another test
    desired = decide(backlog, current, policy, now=NOW, last_change=last_change).desired
    since = math.inf if last_change is None else NOW - last_change
    if desired > current:
        assert since >= policy.up_cooldown_s
    if desired < current:
        assert since >= policy.down_cooldown_s


@PROPERTY
@given(current=replicas, policy=policies, fraction=st.floats(0, 1.2))
def test_a_cut_needs_the_backlog_below_the_hysteresis_band(current, policy, fraction):
    """Within the bounds, replicas are removed only when the backlog is empty or below
    (current - 1) x target x (1 - hysteresis); backlogs are drawn around that line."""
    backlog = math.floor((current - 1) * policy.target * fraction) if current else 0
    if not lowest(backlog, policy) <= current <= policy.max_replicas:
        return
    desired = decide(backlog, current, policy, now=NOW, last_change=None).desired
    if desired < current:
        assert backlog == 0 or backlog < (current - 1) * policy.target * (1 - policy.hysteresis)


STACK = Policy(min_replicas=1, max_replicas=16, target=20, hysteresis=0.2, up_cooldown_s=30, down_cooldown_s=300)


@pytest.mark.parametrize(
    ("backlog", "current", "expected"),
    [
        (0, 2, Decision(1, "scale_down")),
        (1, 1, Decision(1, "steady")),
        (21, 1, Decision(2, "scale_up")),
        (100, 2, Decision(5, "scale_up")),
        (10_000, 4, Decision(16, "scale_up")),
        (10_000, 20, Decision(16, "above_maximum")),
        (50, 0, Decision(3, "below_minimum")),
        # 5 workers, 41 pages: the want is 3, and 41 is below 4 x 20 x 0.8 = 64: cut to 3.
        (41, 5, Decision(3, "scale_down")),
        # 3 workers, 39 pages: the want is 2, but 39 is not below 2 x 20 x 0.8 = 32: keep 3.
        (39, 3, Decision(3, "hysteresis")),
        (31, 3, Decision(2, "scale_down")),
    ],
)
def test_worked_examples_with_the_stack_labels(backlog, current, expected):
    """ceil(backlog / 20) within [1, 16], a cut only below the band."""
    assert decide(backlog, current, STACK, now=NOW, last_change=None) == expected


def test_cooldowns_hold_the_count_then_let_it_move():
    """Right after a change a rise waits 30 s and a cut 300 s; after them, each goes through."""
    assert decide(100, 2, STACK, now=NOW, last_change=NOW - 10) == Decision(2, "up_cooldown")
    assert decide(100, 2, STACK, now=NOW, last_change=NOW - 30) == Decision(5, "scale_up")
    assert decide(0, 5, STACK, now=NOW, last_change=NOW - 299) == Decision(5, "down_cooldown")
    assert decide(0, 5, STACK, now=NOW, last_change=NOW - 300) == Decision(1, "scale_down")


def test_scale_to_zero_only_when_empty_and_back_at_once():
    """With scale to zero the last worker goes once nothing waits (after the cooldown), and a
    single page brings the minimum back at once, without waiting for the up cooldown."""
    policy = Policy(min_replicas=2, max_replicas=4, target=10, scale_to_zero=True)
    assert decide(0, 1, policy, now=NOW, last_change=None) == Decision(0, "scale_down")
    assert decide(0, 0, policy, now=NOW, last_change=NOW) == Decision(0, "steady")
    assert decide(1, 0, policy, now=NOW, last_change=NOW) == Decision(2, "below_minimum")
    without = Policy(min_replicas=1, max_replicas=4, target=10)
    assert decide(0, 1, without, now=NOW, last_change=None) == Decision(1, "steady")


@pytest.mark.parametrize(
    "options",
    [
        {"min_replicas": 0},
        {"min_replicas": 3, "max_replicas": 2},
        {"target": 0},
        {"hysteresis": 1.0},
        {"hysteresis": -0.1},
        {"up_cooldown_s": -1},
    ],
)
def test_contradicting_policies_are_refused(options):
    """A policy that cannot be followed is refused as it is made, never followed halfway."""
    values = {"min_replicas": 1, "max_replicas": 4, "target": 10, **options}
    with pytest.raises(PolicyError):
        Policy(**values)
