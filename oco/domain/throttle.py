"""Login throttling: how long repeated failed logins lock an account name or a client address out.

Each account name and each client address keeps a count of its consecutive failures. The failure numbered
`lockout_after` locks it for `lockout_seconds`, every further one for twice as long as the one before, up to
`max_lockout_seconds`; a failure long after the previous one (`forget_after_seconds`) counts as the first
again, and a successful login clears the count. While locked, a login is refused without its password
being checked, and the refusal does not count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class ThrottleScope(StrEnum):
    """What a failure count belongs to."""

    ACCOUNT = "account"
    ADDRESS = "address"


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """The settings of login throttling (docs/configuration.md)."""

    lockout_after: int = 5
    lockout_seconds: float = 5.0
    max_lockout_seconds: float = 900.0
    forget_after_seconds: float = 3600.0


@dataclass(frozen=True, slots=True)
class FailureCount:
    """The consecutive failed logins of one account name or address."""

    failures: int
    last_failure: datetime
    locked_until: datetime | None = None


def remaining_lockout(count: FailureCount | None, now: datetime) -> float:
    """The seconds until `count` allows a login again (0 when it is not locked), rounded up."""
    if count is None or count.locked_until is None or count.locked_until <= now:
        return 0.0
    return float(math.ceil((count.locked_until - now).total_seconds()))


def lockout_seconds(failures: int, policy: ThrottlePolicy) -> float:
    """How long the failure numbered `failures` locks out: 0 before `lockout_after`, then doubling."""
    beyond = failures - policy.lockout_after
    if beyond < 0:
        return 0.0
    # 2**beyond overflows a float long after the cap is reached: stop doubling there.
    doubled = policy.lockout_seconds * float(2 ** min(beyond, 64))
    return min(doubled, policy.max_lockout_seconds)


def after_failure(count: FailureCount | None, now: datetime, policy: ThrottlePolicy) -> FailureCount:
    """The count after one more failed login at `now`, with the lockout it earns."""
    fresh = count is None or (now - count.last_failure).total_seconds() >= policy.forget_after_seconds
    failures = 1 if fresh or count is None else count.failures + 1
    seconds = lockout_seconds(failures, policy)
    locked_until = now + timedelta(seconds=seconds) if seconds > 0 else None
    return FailureCount(failures=failures, last_failure=now, locked_until=locked_until)
