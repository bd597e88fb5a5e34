"""Wake-on-LAN: magic packets and the rule that decides whether a woken computer is shut down."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timedelta

from oco.domain.errors import DomainError

MAC_BYTES = 6
SYNC_STREAM = b"\xff" * MAC_BYTES
MAC_REPEAT = 16
_SEPARATORS = re.compile(r"[:\-.\s]")
_HEX12 = re.compile(r"^[0-9a-fA-F]{12}$")


class InvalidMac(DomainError):
    """A MAC address is not six hexadecimal bytes."""


def parse_mac(text: str) -> bytes:
    """Six bytes of a MAC written with `:`, `-`, `.` or no separators, in any case."""
    digits = _SEPARATORS.sub("", text.strip())
    if not _HEX12.match(digits):
        raise InvalidMac(f"MAC address {text!r} is not six hexadecimal bytes", field="mac")
    return bytes.fromhex(digits)


def magic_packet(mac: bytes) -> bytes:
    """The 102-byte payload: six 0xFF bytes, then the MAC sixteen times."""
    if len(mac) != MAC_BYTES:
        raise InvalidMac(f"MAC address must have {MAC_BYTES} bytes, not {len(mac)}", field="mac")
    return SYNC_STREAM + mac * MAC_REPEAT


def subnet_broadcast(address: str, netmask: str) -> str | None:
    """The IPv4 broadcast address of an interface, or None when it has none (IPv6, bad data, /31, /32)."""
    try:
        network = ipaddress.IPv4Network(f"{address}/{netmask}", strict=False)
    except ValueError:
        return None
    if network.prefixlen >= 31:
        return None
    return str(network.broadcast_address)


def within_wake_window(sent: datetime, seen: datetime, expiry_seconds: int) -> bool:
    """A check-in between the packets and the end of the window proves the computer was woken."""
    earliest, latest = wake_window_sent_bounds(seen, expiry_seconds)
    return earliest <= sent <= latest


def wake_window_sent_bounds(seen: datetime, expiry_seconds: int) -> tuple[datetime, datetime]:
    """The send times whose window contains a check-in at `seen` (for a query over many targets)."""
    return seen - timedelta(seconds=expiry_seconds), seen


def wake_window_over(sent: datetime, now: datetime, expiry_seconds: int) -> bool:
    """After the window without a check-in, the automatic shutdown must be removed."""
    return now > sent + timedelta(seconds=expiry_seconds)
