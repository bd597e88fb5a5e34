"""Phased rollouts: which computer falls in which phase, when the next phase opens, when a rollout halts.

Phases. `--phases 1%,10%,50%,100%` (or counts: `5,50,all`) are cumulative steps: the first phase holds 1 %
of the target computers, the second reaches 10 % of them, and so on. Percentages are rounded up, so a phase
of a non-empty step never comes out empty; a step that adds nobody (5 % of 40 computers after a step of 2)
makes no phase; computers the last step leaves out form a last phase of their own (`10%,50%` is
`10%,50%,all`). A pilot group, if given, is phase 1 on its own and the steps share out the rest.

Membership is deterministic: computers are ranked by the SHA-256 of the container's name and the computer's
id, so the preview shows exactly the phases the deployment then gets, the same computers land early for the
same name, and which computers come first does not depend on the order the targets were picked in.

A phase meets its criterion when its succeeded jobs reach `success_percent` of the jobs that count: the
skipped ones (already installed, incompatible) do not. The next phase opens `soak_seconds` after that.

Halt: when the failed share of a phase's finished jobs exceeds `halt_failure_rate` percent — strictly,
so 10 % at a rate of 10 does not halt — and at least `halt_min_finished` of its jobs have finished (or all
of them, in a phase smaller than that), the rollout halts and hands out nothing more until resumed. Only
jobs finished since the last resume count for the halt, so a resume is not undone by the failures that
caused the halt.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from oco.domain.errors import InvalidRollout
from oco.domain.states import JobState, Vocabulary, spell

DEFAULT_SUCCESS_PERCENT = 95
DEFAULT_HALT_MIN_FINISHED = 10
PHASES_MAX = 20
HALTED = -1
"""The open phase of a halted rollout: no waiting job of any phase is handed out."""

_STEP = re.compile(r"(?P<number>\d+)\s*(?P<percent>%?)")
_DURATION = re.compile(r"(?P<number>\d+)\s*(?P<unit>[smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_MAX = 30 * 86400


@dataclass(frozen=True, slots=True)
class Step:
    """A cumulative step: `value` computers, or `value` percent of them when `percent`."""

    value: int
    percent: bool

    @property
    def text(self) -> str:
        if self.percent and self.value == 100:
            return "100%"
        return f"{self.value}%" if self.percent else str(self.value)

    def reach(self, total: int) -> int:
        """How many computers this step reaches, of `total`."""
        if self.percent:
            return min(total, math.ceil(self.value * total / 100))
        return min(total, self.value)


ALL = Step(100, percent=True)


def parse_phases(text: str, *, field: str = "phases") -> tuple[Step, ...]:
    """The steps of `1%,10%,50%,100%` or `5,50,all` (empty: none); InvalidRollout names a bad entry."""
    steps: list[Step] = []
    for raw in text.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "all":
            step = ALL
        else:
            match = _STEP.fullmatch(entry)
            if match is None:
                raise InvalidRollout(
                    f"phase {raw.strip()!r} must be a percentage (10%), a number of computers (50) or 'all'",
                    field=field,
                )
            step = Step(int(match["number"]), bool(match["percent"]))
            if step.value < 1 or (step.percent and step.value > 100):
                raise InvalidRollout(
                    f"phase {raw.strip()!r} must be 1% to 100% or at least 1 computer", field=field
                )
        steps.append(step)
    if len(steps) > PHASES_MAX:
        raise InvalidRollout(f"a rollout has at most {PHASES_MAX} phases, not {len(steps)}", field=field)
    _check_increasing(steps, field)
    return tuple(steps)


def _check_increasing(steps: Sequence[Step], field: str) -> None:
    for before, after in itertools.pairwise(steps):
        if before.percent == after.percent and after.value <= before.value:
            raise InvalidRollout(
                f"phases must grow: {after.text} after {before.text} reaches no new computer", field=field
            )
        if before == ALL:
            raise InvalidRollout("'all' (100%) must be the last phase", field=field)


def phases_text(steps: Sequence[Step]) -> str:
    return ",".join(step.text for step in steps)


def phase_sizes(steps: Sequence[Step], total: int) -> list[int]:
    """How many computers each phase gets, of `total` ranked computers; empty phases are left out and
    the computers the last step leaves out form a last phase."""
    sizes: list[int] = []
    reached = 0
    for step in (*steps, ALL):
        reach = max(reached, step.reach(total))
        if reach > reached:
            sizes.append(reach - reached)
            reached = reach
    return sizes


def rank(seed: str, computer_id: int) -> bytes:
    """A computer's place in the rollout of the container named `seed` (smaller comes first)."""
    return hashlib.sha256(f"{seed}\x00{computer_id}".encode()).digest()


def assign_phases(
    seed: str, computer_ids: Iterable[int], steps: Sequence[Step], pilot: Iterable[int] = ()
) -> dict[int, int]:
    """Computer id → its phase (0 is the first) for every computer given, each exactly once.

    With a pilot group, the targets in it are phase 0 and the steps share out the others.
    """
    targets = sorted(set(computer_ids), key=lambda computer_id: (rank(seed, computer_id), computer_id))
    pilots = set(pilot)
    phases: dict[int, int] = {}
    first = 0
    if pilots & set(targets):
        phases = {computer_id: 0 for computer_id in targets if computer_id in pilots}
        targets = [computer_id for computer_id in targets if computer_id not in pilots]
        first = 1
    position = 0
    for number, size in enumerate(phase_sizes(steps, len(targets)), start=first):
        for computer_id in targets[position : position + size]:
            phases[computer_id] = number
        position += size
    return phases


@dataclass(frozen=True, slots=True)
class RolloutRules:
    """What a rollout asks: the steps, the pilot group, the criterion, the soak and the halt rule."""

    steps: tuple[Step, ...] = ()
    pilot_group_id: int | None = None
    success_percent: int = DEFAULT_SUCCESS_PERCENT
    soak_seconds: int = 0
    halt_failure_rate: int | None = None
    halt_min_finished: int = DEFAULT_HALT_MIN_FINISHED

    @property
    def active(self) -> bool:
        """Whether the deployment is a rollout at all (phases, a pilot group or a halt rule)."""
        return bool(self.steps) or self.pilot_group_id is not None or self.halt_failure_rate is not None


@dataclass(frozen=True, slots=True)
class RolloutEdit:
    """Changes to a container's phases plan; None leaves a rule as it is (`clear_halt` drops the halt
    rule)."""

    steps: tuple[Step, ...] | None = None
    success_percent: int | None = None
    soak_seconds: int | None = None
    halt_failure_rate: int | None = None
    clear_halt: bool = False
    halt_min_finished: int | None = None

    @property
    def empty(self) -> bool:
        return self == RolloutEdit()


NO_ROLLOUT = RolloutRules()
"""A deployment that is no rollout: everyone at once, never halted."""


def validate_rules(rules: RolloutRules) -> RolloutRules:
    """The rules, or InvalidRollout naming the field out of range."""
    if not 0 <= rules.success_percent <= 100:
        raise InvalidRollout(
            f"phase success must be 0 to 100 %, not {rules.success_percent}", field="phase_success"
        )
    if rules.halt_failure_rate is not None and not 0 <= rules.halt_failure_rate <= 100:
        raise InvalidRollout(
            f"halt failure rate must be 0 to 100 %, not {rules.halt_failure_rate}", field="halt_failure_rate"
        )
    if rules.halt_min_finished < 1:
        raise InvalidRollout(
            f"halt minimum must be at least 1 finished job, not {rules.halt_min_finished}",
            field="halt_min_finished",
        )
    if not 0 <= rules.soak_seconds <= DURATION_MAX:
        raise InvalidRollout(
            f"phase soak must be 0 to 30 days, not {rules.soak_seconds} seconds", field="phase_soak"
        )
    return rules


def parse_duration(text: str, *, field: str) -> int:
    """Seconds of `30m`, `2h`, `90s`, `1d` or a plain number of seconds; empty is 0."""
    entry = text.strip().lower()
    if not entry:
        return 0
    match = _DURATION.fullmatch(entry)
    if match is None:
        raise InvalidRollout(f"duration {text.strip()!r} must be like 90s, 30m, 2h or 1d", field=field)
    seconds = int(match["number"]) * _UNIT_SECONDS[match["unit"]]
    if seconds > DURATION_MAX:
        raise InvalidRollout(f"duration {text.strip()!r} is longer than 30 days", field=field)
    return seconds


def duration_text(seconds: int) -> str:
    """`30m`, `2h`, `1d`, `90s`: the largest unit that divides the duration."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class PhaseCounts:
    """A phase's jobs that count (skipped ones left out): how many succeeded, failed, are still pending."""

    succeeded: int = 0
    failed: int = 0
    pending: int = 0

    @property
    def total(self) -> int:
        return self.succeeded + self.failed + self.pending

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed


COUNTED_SUCCESS = frozenset({JobState.SUCCEEDED})
COUNTED_FAILURE = frozenset({JobState.FAILED, JobState.EXPIRED})
SKIPPED = frozenset({JobState.ALREADY_INSTALLED, JobState.OS_INCOMPATIBLE})


def count_states(states: Mapping[JobState, int]) -> PhaseCounts:
    """The counts of a phase from its jobs per state (skipped states ignored)."""
    return PhaseCounts(
        succeeded=sum(n for state, n in states.items() if state in COUNTED_SUCCESS),
        failed=sum(n for state, n in states.items() if state in COUNTED_FAILURE),
        pending=sum(n for state, n in states.items() if not state.is_final),
    )


def criterion_met(counts: PhaseCounts, success_percent: int) -> bool:
    """Succeeded jobs reach `success_percent` of the phase's jobs that count (a phase of none is met)."""
    return counts.succeeded * 100 >= success_percent * counts.total


def halts(counts: PhaseCounts, rate: int | None, min_finished: int) -> bool:
    """The failed share of the finished jobs exceeds `rate` % with enough of them finished.

    `counts` are the jobs finished since the last resume (pending: the rest of the phase)."""
    if rate is None or counts.finished == 0:
        return False
    if counts.finished < min(min_finished, counts.total):
        return False
    return counts.failed * 100 > rate * counts.finished


class RolloutEvent(Vocabulary, StrEnum):
    """What a rollout tells its webhook and its history."""

    PHASE_OPENED = "phase-opened"
    HALTED = "halted"
    RESUMED = "resumed"
    CANCELED = "canceled"
    COMPLETED = "completed"


spell(
    RolloutEvent,
    {
        RolloutEvent.PHASE_OPENED: ("phase-opened", "phase opened"),
        RolloutEvent.HALTED: ("halted", "halted"),
        RolloutEvent.RESUMED: ("resumed", "resumed"),
        RolloutEvent.CANCELED: ("canceled", "canceled"),
        RolloutEvent.COMPLETED: ("completed", "completed"),
    },
)


class Move(StrEnum):
    """What housekeeping does with a rollout now."""

    NOTHING = "nothing"
    MARK_MET = "mark-met"
    OPEN_NEXT = "open-next"
    COMPLETE = "complete"


@dataclass(frozen=True, slots=True)
class RolloutState:
    """Where a rollout stands: the current phase, when it met its criterion, whether it is halted."""

    current: int
    phases: int
    met_at: datetime | None = None
    halted: bool = False
    completed: bool = False


def next_move(state: RolloutState, current: PhaseCounts, rules: RolloutRules, now: datetime) -> Move:
    """The next step of a rollout that is not halted: note the criterion met (starting the soak), open
    the next phase once soaked, or say it is complete when its last phase has nothing pending."""
    if state.halted or state.completed:
        return Move.NOTHING
    last = state.current >= state.phases - 1
    if last:
        return Move.COMPLETE if current.pending == 0 else Move.NOTHING
    if not criterion_met(current, rules.success_percent):
        return Move.NOTHING
    if state.met_at is None:
        return Move.OPEN_NEXT if rules.soak_seconds == 0 else Move.MARK_MET
    if now >= state.met_at + timedelta(seconds=rules.soak_seconds):
        return Move.OPEN_NEXT
    return Move.NOTHING


def phase_label(number: int, pilot: bool) -> str:
    """How people name a phase: "pilot" for a pilot group's, else its number from 1."""
    if pilot and number == 0:
        return "pilot"
    return f"phase {number + 1}"


def phase_is_open(phase: int | None, open_phase: int | None) -> bool:
    """Whether a waiting job of `phase` may be handed out when the container's open phase is `open_phase`
    (None on either side: no rollout; HALTED opens nothing)."""
    return phase is None or open_phase is None or phase <= open_phase


def halt_text(details: Mapping[str, object] | None) -> str:
    """Why a rollout halted, in words: "phase 2: 3 of 20 finished jobs failed (15 %, more than 10 %)"."""
    if not details:
        return "halted"
    label = details.get("label", "")
    if "finished" not in details:
        return f"halted by hand during {label}"
    finished, failed, rate = details.get("finished"), details.get("failed"), details.get("rate")
    share = round(100 * int(str(failed)) / int(str(finished))) if finished else 0
    return f"{label}: {failed} of {finished} finished jobs failed ({share} %, more than {rate} %)"
