"""The settings of a job container and the rules they obey (DESIGN.md "The domain, precisely").

Limits are declared here once; the admin API's schemas, the console's form fields and the CLI use them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo

from oco.domain.errors import InvalidDeployment, InvalidDeploymentIpRange, InvalidIpRange
from oco.domain.ipranges import normalize_ip_ranges
from oco.domain.states import SequenceMode

PRIORITY_MIN, PRIORITY_MAX = -100, 100
"""Container priority range; higher runs first."""
RESTART_TIMEOUT_MIN, RESTART_TIMEOUT_MAX = -1_000_000, 1_000_000
"""Restart timeout range in minutes; negative means the agent never restarts or shuts down."""
DEFAULT_RESTART_TIMEOUT = 20
"""Minutes an agent waits for a logged-in user before a restart or shutdown."""
NAME_MAX = 255
"""Characters of a container name."""


@dataclass(frozen=True, slots=True)
class ContainerSettings:
    """The editable settings of a job container, validated together; times are timezone-aware."""

    name: str
    start: datetime
    end: datetime | None = None
    priority: int = 0
    restart_timeout: int = DEFAULT_RESTART_TIMEOUT
    sequence_mode: SequenceMode = SequenceMode.IGNORE_FAILED
    agent_ip_ranges: str = ""


def validate_container(settings: ContainerSettings, zone: tzinfo = UTC) -> ContainerSettings:
    """Check the settings; returns them with the name trimmed, the sequence mode as the enum and the
    IP ranges normalized.

    Raises InvalidDeployment whose `field` names the bad setting ("name", "start", "end", "priority",
    "restart_timeout", "sequence_mode", "agent_ip_ranges"); a bad IP range raises
    InvalidDeploymentIpRange, which is also an InvalidIpRange.
    """
    name = _checked_name(settings.name)
    _check_times(settings.start, settings.end, zone)
    _check_integer("priority", settings.priority, PRIORITY_MIN, PRIORITY_MAX)
    _check_integer("restart_timeout", settings.restart_timeout, RESTART_TIMEOUT_MIN, RESTART_TIMEOUT_MAX)
    return replace(
        settings,
        name=name,
        sequence_mode=_checked_sequence_mode(settings.sequence_mode),
        agent_ip_ranges=_checked_ip_ranges(settings.agent_ip_ranges),
    )


def _checked_name(name: str) -> str:
    trimmed = name.strip()
    if not trimmed:
        raise InvalidDeployment("name must not be empty", field="name")
    if len(trimmed) > NAME_MAX:
        raise InvalidDeployment(
            f"name {trimmed[:20]!r}… must have at most {NAME_MAX} characters", field="name"
        )
    return trimmed


def _check_times(start: datetime, end: datetime | None, zone: tzinfo) -> None:
    for label, moment in (("start", start), ("end", end)):
        if moment is not None and moment.utcoffset() is None:
            raise InvalidDeployment(f"{label} {moment.isoformat()} must carry a time zone", field=label)
    if end is not None and end <= start:
        raise InvalidDeployment(
            f"end {shown_time(end, zone)} must be after start {shown_time(start, zone)}", field="end"
        )


def shown_time(moment: datetime, zone: tzinfo) -> str:
    """A time as messages show it: to the minute in `zone` (the console's), with the zone's name."""
    local = moment.astimezone(zone)
    return f"{local.strftime('%Y-%m-%d %H:%M')} {local.tzname() or zone}"


def _check_integer(label: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidDeployment(f"{label} {value!r} must be a whole number", field=label)
    if not low <= value <= high:
        raise InvalidDeployment(f"{label} {value} must be between {low} and {high}", field=label)


def _checked_sequence_mode(value: object) -> SequenceMode:
    if isinstance(value, int) and not isinstance(value, bool) and value in set(SequenceMode):
        return SequenceMode(value)
    modes = ", ".join(str(int(mode)) for mode in SequenceMode)
    raise InvalidDeployment(f"sequence mode {value!r} must be one of {modes}", field="sequence_mode")


def _checked_ip_ranges(text: str | None) -> str:
    try:
        return normalize_ip_ranges(text)
    except InvalidIpRange as exc:
        raise InvalidDeploymentIpRange(exc.message, field="agent_ip_ranges") from exc
