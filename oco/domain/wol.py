"""Wake-on-LAN: magic packets, broadcast addresses, and the rule that decides whether a woken computer
is shut down after its last job.

The shutdown rule (seed "WOL/Shutdown"): only computers that were offline when the packets were sent can
get the shutdown. One that checks in within the expiry window after the packets (sent <= check-in <=
sent + expiry) counts as woken and keeps it; once the window has passed without a check-in, WOL is taken
not to have worked and the shutdown is removed, so a computer a person switches on later is never shut down.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timedelta
from enum import StrEnum

from oco.domain.errors import InvalidMac as InvalidMac  # re-exported: raised by parse_mac
from oco.domain.states import Vocabulary, spell

MAC_BYTES = 6
SYNC_STREAM = b"\xff" * MAC_BYTES
MAC_REPEAT = 16
MAGIC_PACKET_SIZE = len(SYNC_STREAM) + MAC_BYTES * MAC_REPEAT
DEFAULT_WOL_SHUTDOWN_EXPIRY_SECONDS = 300
_NO_BROADCAST_PREFIX = 31
"""/31 point-to-point links and /32 hosts have no broadcast address."""
_MAC_FORMATS = (
    re.compile(r"[0-9a-f]{12}"),  # 001122aabbcc
    re.compile(r"[0-9a-f]{1,2}([:-])[0-9a-f]{1,2}(?:\1[0-9a-f]{1,2}){4}"),  # 00:11:22:aa:bb:cc, 0-11-…
    re.compile(r"[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}"),  # 0011.22aa.bbcc
)
_GROUP_SEPARATOR = re.compile(r"[:.-]")


class WolShutdown(StrEnum):
    """What becomes of a WOL target's automatic shutdown."""

    KEEP = "keep"
    """The computer was woken: it shuts down after its last job."""
    REMOVE = "remove"
    """It was online already, or did not come up within the window: never shut it down."""
    UNDECIDED = "undecided"
    """The window is still open and the computer has not checked in yet."""


def parse_mac(text: str) -> bytes:
    """Six bytes of a MAC written as 12 hex digits, six groups separated by `:` or `-` (one-digit groups
    allowed), or three 4-digit groups separated by `.`; any case. Raises InvalidMac naming the text."""
    candidate = text.strip().lower() if isinstance(text, str) else ""
    for pattern in _MAC_FORMATS:
        if pattern.fullmatch(candidate):
            return _mac_bytes(candidate)
    raise InvalidMac(f"MAC address {text!r} is not six hexadecimal bytes", field="mac")


def _mac_bytes(candidate: str) -> bytes:
    groups = _GROUP_SEPARATOR.split(candidate)
    if len(groups) == MAC_BYTES:
        return bytes(int(group, 16) for group in groups)
    return bytes.fromhex("".join(groups))


def magic_packet(mac: bytes) -> bytes:
    """The 102-byte payload: six 0xFF bytes, then the MAC sixteen times."""
    if len(mac) != MAC_BYTES:
        raise InvalidMac(
            f"MAC address {mac.hex()!r} must have {MAC_BYTES} bytes, not {len(mac)}", field="mac"
        )
    return SYNC_STREAM + mac * MAC_REPEAT


def subnet_broadcast(address: str, netmask: str) -> str | None:
    """The IPv4 broadcast address of an interface (netmask dotted or as a prefix length), or None when it
    has none: IPv6, unparsable data, /31 and /32."""
    try:
        network = ipaddress.IPv4Network(f"{address.strip()}/{netmask.strip()}", strict=False)
    except ValueError:
        return None
    if network.prefixlen >= _NO_BROADCAST_PREFIX:
        return None
    return str(network.broadcast_address)


def within_wake_window(sent: datetime, seen: datetime, expiry_seconds: int) -> bool:
    """A check-in between the packets and the end of the window (both included) proves the computer woke."""
    earliest, latest = wake_window_sent_bounds(seen, expiry_seconds)
    return earliest <= sent <= latest


def wake_window_sent_bounds(seen: datetime, expiry_seconds: int) -> tuple[datetime, datetime]:
    """The range of send times whose window contains a check-in at `seen` (for a query over many targets)."""
    return seen - timedelta(seconds=expiry_seconds), seen


def wake_window_over(sent: datetime, now: datetime, expiry_seconds: int) -> bool:
    """The window after packets sent at `sent` has closed: a computer not seen by now was not woken."""
    return now > sent + timedelta(seconds=expiry_seconds)


def wol_shutdown_fate(
    sent: datetime | None,
    first_checkin_after_wol: datetime | None,
    now: datetime,
    expiry_seconds: int = DEFAULT_WOL_SHUTDOWN_EXPIRY_SECONDS,
    *,
    online_when_sent: bool = False,
) -> WolShutdown:
    """Decide a WOL target's shutdown by the rule in the module docstring.

    `sent` is None while no packet went out (the container has not started): undecided, unless the
    computer was online. A check-in before the packets does not count.
    """
    if online_when_sent:
        return WolShutdown.REMOVE
    if sent is None:
        return WolShutdown.UNDECIDED
    seen = first_checkin_after_wol
    if seen is not None and within_wake_window(sent, seen, expiry_seconds):
        return WolShutdown.KEEP
    if wake_window_over(sent, now, expiry_seconds):
        return WolShutdown.REMOVE
    return WolShutdown.UNDECIDED


class WakeOutcome(Vocabulary, StrEnum):
    """What became of a Wake-on-LAN target of a container, as the console shows it."""

    AT_START = "at-start"
    AWAITED = "awaited"
    WOKEN = "woken"
    NOT_WOKEN = "not-woken"
    WAS_ONLINE = "was-online"


spell(
    WakeOutcome,
    {
        WakeOutcome.AT_START: ("at-start", "magic packets at the container's start"),
        WakeOutcome.AWAITED: ("awaited", "packets sent, not checked in yet"),
        WakeOutcome.WOKEN: ("woken", "woken"),
        WakeOutcome.NOT_WOKEN: ("not-woken", "did not come up in time: automatic shutdown removed"),
        WakeOutcome.WAS_ONLINE: ("was-online", "was online: not woken, never shut down"),
    },
)


def wake_outcome(sent: datetime | None, woken: datetime | None, expired: bool) -> WakeOutcome:
    """A target's outcome from what is stored of it: when packets went out, when it checked in, and
    whether its shutdown was removed (online at the start, or the window passed)."""
    if woken is not None:
        return WakeOutcome.WOKEN
    if sent is None:
        return WakeOutcome.WAS_ONLINE if expired else WakeOutcome.AT_START
    return WakeOutcome.NOT_WOKEN if expired else WakeOutcome.AWAITED
