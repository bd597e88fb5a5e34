"""Job container settings: each rule of `validate_container`, with the field it names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from oco.domain.containers import (
    PRIORITY_MAX,
    PRIORITY_MIN,
    RESTART_TIMEOUT_MAX,
    RESTART_TIMEOUT_MIN,
    ContainerSettings,
    validate_container,
)
from oco.domain.errors import InvalidDeployment, InvalidIpRange
from oco.domain.states import SequenceMode

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def settings(**changes: object) -> ContainerSettings:
    values: dict[str, object] = {"name": "Rollout", "start": NOW}
    values.update(changes)
    return ContainerSettings(**values)  # type: ignore[arg-type]  # wrong types are what is tested


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": "  "}, "name", "name must not be empty"),
        ({"name": "x" * 256}, "name", "must have at most 255 characters"),
        ({"priority": -101}, "priority", "priority -101 must be between -100 and 100"),
        ({"priority": 101}, "priority", "priority 101 must be between -100 and 100"),
        ({"priority": True}, "priority", "priority True must be a whole number"),
        ({"priority": "5"}, "priority", "priority '5' must be a whole number"),
        ({"end": NOW}, "end", "must be after start"),
        ({"end": NOW - timedelta(days=1)}, "end", "must be after start"),
        ({"start": datetime(2026, 3, 1)}, "start", "start 2026-03-01T00:00:00 must carry a time zone"),
        ({"end": datetime(2026, 3, 2)}, "end", "must carry a time zone"),
        ({"restart_timeout": 2.5}, "restart_timeout", "restart_timeout 2.5 must be a whole number"),
        ({"sequence_mode": 7}, "sequence_mode", "sequence mode 7 must be one of 0, 1"),
        ({"agent_ip_ranges": "10.0.0.0/33"}, "agent_ip_ranges", "IP range '10.0.0.0/33': prefix length"),
    ],
)
def test_container_settings_are_validated(changes: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(InvalidDeployment, match=message) as raised:
        validate_container(settings(**changes))
    assert raised.value.field == field


def test_a_bad_ip_range_is_also_an_ip_range_error() -> None:
    with pytest.raises(InvalidIpRange, match=r"10\.0\.0\.0/99"):
        validate_container(settings(agent_ip_ranges="10.0.0.0/99"))


def test_valid_settings_are_normalized() -> None:
    end = NOW + timedelta(hours=1)
    validated = validate_container(
        settings(name=" Rollout ", agent_ip_ranges="10.0.0.1, !::1", priority=100, end=end, sequence_mode=1)
    )
    assert (validated.name, validated.agent_ip_ranges, validated.end) == (
        "Rollout",
        "10.0.0.1/32,!::1/128",
        end,
    )
    assert validated.sequence_mode is SequenceMode.ABORT_AFTER_FAILED
    assert validate_container(settings(priority=-100, restart_timeout=-1)).restart_timeout == -1


def test_start_and_end_may_be_in_other_time_zones() -> None:
    paris = timezone(timedelta(hours=1))
    end = datetime(2026, 3, 1, 1, 30, tzinfo=paris)  # 00:30 UTC, after NOW
    assert validate_container(settings(end=end)).end == end


@pytest.mark.parametrize("timeout", [RESTART_TIMEOUT_MIN - 1, RESTART_TIMEOUT_MAX + 1])
def test_a_restart_timeout_outside_its_range_is_refused(timeout: int) -> None:
    with pytest.raises(InvalidDeployment, match=f"restart_timeout {timeout} must be between") as raised:
        validate_container(settings(restart_timeout=timeout))
    assert raised.value.field == "restart_timeout"


@pytest.mark.parametrize("priority", [PRIORITY_MIN, 0, PRIORITY_MAX])
def test_the_limits_themselves_are_accepted(priority: int) -> None:
    limits = (RESTART_TIMEOUT_MIN, RESTART_TIMEOUT_MAX)
    for timeout in limits:
        assert validate_container(settings(priority=priority, restart_timeout=timeout)).priority == priority
