"""Wake-on-LAN: MAC parsing, magic packets, broadcast addresses, and the shutdown window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.errors import DomainError
from oco.domain.wol import (
    DEFAULT_WOL_SHUTDOWN_EXPIRY_SECONDS,
    MAGIC_PACKET_SIZE,
    InvalidMac,
    WolShutdown,
    magic_packet,
    parse_mac,
    subnet_broadcast,
    wake_window_over,
    wake_window_sent_bounds,
    within_wake_window,
    wol_shutdown_fate,
)

SENT = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
WINDOW = DEFAULT_WOL_SHUTDOWN_EXPIRY_SECONDS
MAC = bytes.fromhex("aabbccddeeff")


def after(seconds: float) -> datetime:
    return SENT + timedelta(seconds=seconds)


# MAC addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["AA:BB:CC:DD:EE:FF", "aa-bb-cc-dd-ee-ff", "aabb.ccdd.eeff", "AABBCCDDEEFF", " aa:BB:cc:DD:ee:FF\n"],
)
def test_mac_formats(text: str) -> None:
    assert parse_mac(text) == MAC


def test_one_digit_groups_are_padded() -> None:
    assert parse_mac("0:1b:2:c:d:e") == bytes.fromhex("001b020c0d0e")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "AA:BB:CC:DD:EE",
        "GG:BB:CC:DD:EE:FF",
        "AA:BB:CC:DD:EE:FF:00",
        "AA:BB-CC:DD:EE:FF",  # mixed separators
        "AA::BB:CC:DD:EE:FF",
        "a:b:c:d:e:f:0:1:2:3:4:5",
        "aabb.ccdd.ee.ff",
        "aabbccddeeff00",
    ],
)
def test_bad_macs_are_named(text: str) -> None:
    with pytest.raises(InvalidMac) as raised:
        parse_mac(text)
    assert str(raised.value) == f"MAC address {text!r} is not six hexadecimal bytes"
    assert raised.value.field == "mac" and isinstance(raised.value, DomainError)


@given(mac=st.binary(min_size=6, max_size=6), upper=st.booleans())
def test_every_written_form_of_a_mac_parses_back(mac: bytes, upper: bool) -> None:
    digits = mac.hex().upper() if upper else mac.hex()
    pairs = [digits[i : i + 2] for i in range(0, 12, 2)]
    forms = [digits, ":".join(pairs), "-".join(pairs), ".".join(digits[i : i + 4] for i in range(0, 12, 4))]
    assert {parse_mac(form) for form in forms} == {mac}


# Magic packets ---------------------------------------------------------------------------------


@given(st.binary(min_size=6, max_size=6))
def test_magic_packet_layout(mac: bytes) -> None:
    packet = magic_packet(mac)
    assert len(packet) == MAGIC_PACKET_SIZE == 102
    assert packet[:6] == b"\xff" * 6
    assert all(packet[6 + 6 * i : 12 + 6 * i] == mac for i in range(16))


def test_a_magic_packet_needs_six_bytes() -> None:
    with pytest.raises(InvalidMac, match="must have 6 bytes, not 5"):
        magic_packet(MAC[:5])


# Broadcast addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "netmask", "broadcast"),
    [
        ("192.0.2.10", "255.255.255.0", "192.0.2.255"),
        ("198.51.100.7", "255.255.0.0", "198.51.255.255"),
        ("10.1.2.3", "8", "10.255.255.255"),  # a prefix length works as well
        ("192.0.2.10", "255.255.255.254", None),  # /31: point-to-point, no broadcast
        ("192.0.2.10", "255.255.255.255", None),
        ("fe80::1", "ffff:ffff:ffff:ffff::", None),
        ("garbage", "", None),
        ("192.0.2.10", "255.0.255.0", None),  # not a netmask
    ],
)
def test_subnet_broadcasts(address: str, netmask: str, broadcast: str | None) -> None:
    assert subnet_broadcast(address, netmask) == broadcast


# The shutdown window ---------------------------------------------------------------------------


def test_a_check_in_inside_the_window_proves_the_wake() -> None:
    assert within_wake_window(SENT, after(0), WINDOW)
    assert within_wake_window(SENT, after(WINDOW), WINDOW)
    assert not within_wake_window(SENT, after(WINDOW + 1), WINDOW)
    assert not within_wake_window(SENT, after(-1), WINDOW)


def test_the_window_closes_after_the_expiry() -> None:
    assert not wake_window_over(SENT, after(WINDOW), WINDOW)
    assert wake_window_over(SENT, after(WINDOW + 1), WINDOW)


def test_sent_bounds_select_the_windows_a_check_in_falls_into() -> None:
    seen = after(120)
    earliest, latest = wake_window_sent_bounds(seen, WINDOW)
    assert (earliest, latest) == (seen - timedelta(seconds=WINDOW), seen)


@pytest.mark.parametrize(
    ("sent", "checkin", "now", "online", "fate"),
    [
        (SENT, after(60), after(60), False, WolShutdown.KEEP),
        (SENT, after(60), after(10_000), False, WolShutdown.KEEP),  # once woken, for good
        (SENT, None, after(60), False, WolShutdown.UNDECIDED),
        (SENT, None, after(WINDOW), False, WolShutdown.UNDECIDED),
        (SENT, None, after(WINDOW + 1), False, WolShutdown.REMOVE),
        (SENT, after(WINDOW + 60), after(WINDOW + 60), False, WolShutdown.REMOVE),  # switched on by hand
        (SENT, after(-60), after(60), False, WolShutdown.UNDECIDED),  # seen before the packets: no proof
        (None, None, after(60), False, WolShutdown.UNDECIDED),  # the container has not started
        (SENT, after(60), after(60), True, WolShutdown.REMOVE),  # online already: never shut down
        (None, None, after(60), True, WolShutdown.REMOVE),
    ],
)
def test_the_fate_of_a_wol_shutdown(
    sent: datetime | None, checkin: datetime | None, now: datetime, online: bool, fate: WolShutdown
) -> None:
    assert wol_shutdown_fate(sent, checkin, now, WINDOW, online_when_sent=online) is fate


@given(
    checkin=st.one_of(st.none(), st.integers(-600, 1200)),
    now=st.integers(0, 2400),
    later=st.integers(0, 2400),
    expiry=st.integers(0, 900),
)
def test_a_decided_fate_never_changes_as_time_goes_on(
    checkin: int | None, now: int, later: int, expiry: int
) -> None:
    seen = None if checkin is None or checkin > now else after(checkin)
    first = wol_shutdown_fate(SENT, seen, after(now), expiry)
    second = wol_shutdown_fate(SENT, seen, after(now + later), expiry)
    if first is not WolShutdown.UNDECIDED:
        assert second is first
    assert (first is WolShutdown.KEEP) is (seen is not None and SENT <= seen <= after(expiry))
