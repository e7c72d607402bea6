"""The health-check policy: a check's status from the history of its probe results.

Pure core (no trio, socket or time: `at` is a parameter). The trio prober (`authd.health.prober`)
feeds each probe's `Observation` to `observe` and persists the result when it changes;
`effective` and `calculated` turn measured statuses into what DNS answers by.

Rules, as the Route 53 Developer Guide states them ("How Amazon Route 53 determines whether
a health check is healthy"):
- a new health check is healthy until there is enough data to say otherwise;
- a healthy endpoint becomes unhealthy after FailureThreshold consecutive failed checks, and
  an unhealthy one healthy again after FailureThreshold consecutive successful checks (with
  one checker, ours, its view is the aggregate view);
- Disabled: "Route 53 considers the status of the health check to always be healthy";
  Inverted then flips whatever the status is (so Disabled + Inverted is always unhealthy:
  octoDNS's `status: down`);
- CALCULATED: healthy when at least HealthThreshold children are healthy (their own
  Inverted/Disabled applied); a child that no longer exists counts as not healthy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Observation:
    """One probe's result."""

    at: float  # epoch seconds
    ok: bool
    detail: str  # Route 53's StatusReport wording: "Success: TCP connection established."


@dataclass(frozen=True, slots=True)
class Measured:
    """What the probes say, before Inverted/Disabled."""

    healthy: bool = True
    since: float = 0.0  # when `healthy` last changed (or the check was created)
    streak: int = 0  # consecutive results contradicting `healthy` (towards a change)
    failures: int = 0  # consecutive failures up to now (for the log line)
    last: Observation | None = None
    last_failure: Observation | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """A status change, for the log and the store."""

    healthy: bool
    at: float
    count: int  # consecutive results that made it
    reason: str  # the last result's detail


def new_status(created_at: float) -> Measured:
    """A new check is healthy until there's enough data (Route 53)."""
    return Measured(healthy=True, since=created_at)


def observe(state: Measured, obs: Observation, failure_threshold: int) -> tuple[Measured, Transition | None]:
    """Fold one result into the status. Returns the new status and the transition, if any."""
    if failure_threshold < 1:
        raise ValueError("failure_threshold must be at least 1")
    failures = 0 if obs.ok else state.failures + 1
    last_failure = state.last_failure if obs.ok else obs
    if obs.ok == state.healthy:
        return replace(state, streak=0, failures=failures, last=obs, last_failure=last_failure), None
    streak = state.streak + 1
    if streak < failure_threshold:
        return replace(state, streak=streak, failures=failures, last=obs, last_failure=last_failure), None
    new = Measured(healthy=obs.ok, since=obs.at, streak=0, failures=failures, last=obs,
                   last_failure=last_failure)
    return new, Transition(healthy=obs.ok, at=obs.at, count=streak, reason=obs.detail)


def replay(history: Iterable[Observation], failure_threshold: int, created_at: float = 0.0) -> Measured:
    """The status after a whole history (oldest first)."""
    state = new_status(created_at)
    for obs in history:
        state, _ = observe(state, obs, failure_threshold)
    return state


def effective(measured_healthy: bool, *, inverted: bool, disabled: bool) -> bool:
    """What DNS routes by: Disabled means healthy, then Inverted flips it."""
    status = True if disabled else measured_healthy
    return not status if inverted else status


def calculated(children: Sequence[bool | None], health_threshold: int, *, inverted: bool,
               disabled: bool) -> bool:
    """A CALCULATED check over its children's effective statuses (None: the child is gone)."""
    healthy = sum(1 for c in children if c)
    return effective(healthy >= health_threshold, inverted=inverted, disabled=disabled)


def calculated_detail(children: Sequence[bool | None], health_threshold: int) -> str:
    healthy = sum(1 for c in children if c)
    verdict = "Success" if healthy >= health_threshold else "Failure"
    return (f"{verdict}: {healthy} of {len(children)} child health checks are healthy "
            f"(health threshold {health_threshold}).")
