"""Container status and progress, purge ages, return codes, and Wake-on-LAN packets and windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.errors import InvalidReturnCodes
from oco.domain.returncodes import format_codes, is_success, parse_codes
from oco.domain.states import ContainerStatus, JobState
from oco.domain.status import container_status, is_expired, progress, purge_due
from oco.domain.wol import (
    InvalidMac,
    magic_packet,
    parse_mac,
    subnet_broadcast,
    wake_window_over,
    within_wake_window,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
S, F, W, X = JobState.SUCCEEDED, JobState.FAILED, JobState.WAITING, JobState.EXECUTING


@pytest.mark.parametrize(
    ("states", "start", "status"),
    [
        ([], NOW, ContainerStatus.EMPTY),
        ([W, S], NOW + timedelta(hours=1), ContainerStatus.SCHEDULED),
        ([X, F], NOW, ContainerStatus.IN_PROGRESS),
        ([S, F], NOW, ContainerStatus.FAILED),
        ([S, JobState.EXPIRED], NOW, ContainerStatus.FAILED),
        ([S, JobState.OS_INCOMPATIBLE], NOW, ContainerStatus.FAILED),
        ([S, JobState.ALREADY_INSTALLED], NOW, ContainerStatus.SUCCEEDED),
    ],
)
def test_container_status(states: list[JobState], start: datetime, status: ContainerStatus) -> None:
    assert container_status(states, start, NOW) is status


def test_progress_counts_final_jobs() -> None:
    assert progress([S, F, W, X]) == 50
    assert progress([S, W, W]) == 33
    assert progress([]) == 100


@given(st.lists(st.sampled_from(list(JobState)), max_size=30))
def test_progress_is_a_percentage_and_complete_only_when_nothing_is_pending(states: list[JobState]) -> None:
    value = progress(states)
    assert 0 <= value <= 100
    pending = any(not s.is_final for s in states)
    assert (value == 100) is (not pending)
    status = container_status(states, NOW, NOW)
    assert (status is ContainerStatus.IN_PROGRESS) is pending


def test_expiry() -> None:
    assert is_expired(W, NOW, NOW) and is_expired(X, NOW - timedelta(seconds=1), NOW)
    assert not is_expired(W, None, NOW) and not is_expired(S, NOW, NOW)
    assert not is_expired(W, NOW + timedelta(seconds=1), NOW)


@pytest.mark.parametrize(
    ("status", "age_hours", "succeeded_after", "failed_after", "due"),
    [
        (ContainerStatus.SUCCEEDED, 4, 4 * 3600, 48 * 3600, True),
        (ContainerStatus.SUCCEEDED, 3.9, 4 * 3600, 48 * 3600, False),
        (ContainerStatus.FAILED, 47, 4 * 3600, 48 * 3600, False),
        (ContainerStatus.FAILED, 48, 4 * 3600, 48 * 3600, True),
        (ContainerStatus.SUCCEEDED, 1000, 0, 48 * 3600, False),
        (ContainerStatus.FAILED, 1000, 4 * 3600, None, False),
        (ContainerStatus.IN_PROGRESS, 1000, 1, 1, False),
    ],
)
def test_purge_ages(
    status: ContainerStatus, age_hours: float, succeeded_after: int, failed_after: int | None, due: bool
) -> None:
    finished = NOW - timedelta(hours=age_hours)
    assert purge_due(status, finished, NOW, succeeded_after, failed_after) is due
    assert not purge_due(status, None, NOW, succeeded_after, failed_after)


def test_return_codes() -> None:
    assert parse_codes(" 0, 3010 ,") == {0, 3010}
    assert parse_codes("") == frozenset() and parse_codes(None) == frozenset()
    assert format_codes(parse_codes("3010,0,-1")) == "-1,0,3010"
    assert is_success(frozenset(), 123) and is_success({0, 3010}, 3010) and not is_success({0}, None)
    with pytest.raises(InvalidReturnCodes, match="return code 'x' in '0,x' is not an integer"):
        parse_codes("0,x")


@given(st.frozensets(st.integers(-(2**31), 2**31 - 1), max_size=8))
def test_codes_round_trip(codes: frozenset[int]) -> None:
    assert parse_codes(format_codes(codes)) == codes


@pytest.mark.parametrize("text", ["AA:BB:CC:DD:EE:FF", "aa-bb-cc-dd-ee-ff", "aabb.ccdd.eeff", "AABBCCDDEEFF"])
def test_mac_formats(text: str) -> None:
    assert parse_mac(text) == bytes.fromhex("aabbccddeeff")


@pytest.mark.parametrize("text", ["", "AA:BB:CC:DD:EE", "GG:BB:CC:DD:EE:FF", "AA:BB:CC:DD:EE:FF:00"])
def test_bad_macs_are_named(text: str) -> None:
    with pytest.raises(InvalidMac, match="is not six hexadecimal bytes"):
        parse_mac(text)


@given(st.binary(min_size=6, max_size=6))
def test_magic_packet_layout(mac: bytes) -> None:
    packet = magic_packet(mac)
    assert len(packet) == 102 and packet[:6] == b"\xff" * 6
    assert all(packet[6 + 6 * i : 12 + 6 * i] == mac for i in range(16))


def test_subnet_broadcasts() -> None:
    assert subnet_broadcast("192.0.2.10", "255.255.255.0") == "192.0.2.255"
    assert subnet_broadcast("198.51.100.7", "255.255.0.0") == "198.51.255.255"
    assert subnet_broadcast("192.0.2.10", "255.255.255.255") is None
    assert subnet_broadcast("fe80::1", "ffff:ffff:ffff:ffff::") is None
    assert subnet_broadcast("garbage", "") is None


def test_wake_window() -> None:
    sent = NOW
    assert within_wake_window(sent, sent + timedelta(seconds=300), 300)
    assert not within_wake_window(sent, sent + timedelta(seconds=301), 300)
    assert not within_wake_window(sent, sent - timedelta(seconds=1), 300)
    assert not wake_window_over(sent, sent + timedelta(seconds=300), 300)
    assert wake_window_over(sent, sent + timedelta(seconds=301), 300)
