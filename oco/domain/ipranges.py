"""Agent IP range constraints of a job container (seed "Agent IP Range Constraint", DESIGN.md rules).

A constraint is an ordered, comma-separated list of IPv4/IPv6 networks; `!` in front negates one.
Whitespace around entries and after `!` is ignored; empty entries are skipped. An address without a
prefix is a single host (/32, /128). Host bits after the prefix are tolerated and cleared
("10.1.2.3/16" means 10.1.0.0/16), as admins often write a network by one of its addresses.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from oco.domain.errors import InvalidIpRange

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
NEGATION = "!"
SEPARATOR = ","
FIELD = "agent_ip_ranges"
_PREFIX = re.compile(r"[0-9]{1,3}")
_ZONE = "%"


@dataclass(frozen=True, slots=True)
class IpRangeRule:
    """One entry of a constraint: a network, and whether a match rejects (`negated`) or admits."""

    network: Network
    negated: bool

    def __str__(self) -> str:
        return f"{NEGATION if self.negated else ''}{self.network}"

    def matches(self, ip: Address) -> bool:
        """The address lies in the network; an IPv4 address never lies in an IPv6 network."""
        return ip.version == self.network.version and ip in self.network


def parse_ip_ranges(text: str | None) -> tuple[IpRangeRule, ...]:
    """Parse the constraint text into its rules, order kept; None or blank gives no rules.

    Raises InvalidIpRange (field "agent_ip_ranges") naming the first bad entry.
    """
    return _parse_cached(text or "")


@lru_cache(maxsize=512)
def _parse_cached(text: str) -> tuple[IpRangeRule, ...]:
    # Dispatch parses the same few container texts on every check-in: cache them (rules are immutable).
    entries = (item.strip() for item in text.split(SEPARATOR))
    return tuple(_parse_entry(entry) for entry in entries if entry)


def _parse_entry(entry: str) -> IpRangeRule:
    negated = entry.startswith(NEGATION)
    spec = entry.removeprefix(NEGATION).strip()
    if not spec:
        raise InvalidIpRange(f"IP range {entry!r}: '!' must be followed by a network", field=FIELD)
    address_text, slash, prefix_text = spec.partition("/")
    host = _host(entry, address_text.strip())
    if not slash:
        return IpRangeRule(network=ipaddress.ip_network(host), negated=negated)
    prefix = _prefix(entry, prefix_text.strip(), host.max_prefixlen)
    return IpRangeRule(network=ipaddress.ip_network((host, prefix), strict=False), negated=negated)


def _host(entry: str, text: str) -> Address:
    if _ZONE in text:
        raise InvalidIpRange(f"IP range {entry!r}: a zone index ('%…') is not allowed", field=FIELD)
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidIpRange(
            f"IP range {entry!r}: {text!r} is not an IPv4 or IPv6 address", field=FIELD
        ) from None


def _prefix(entry: str, text: str, limit: int) -> int:
    if not _PREFIX.fullmatch(text) or int(text) > limit:
        raise InvalidIpRange(f"IP range {entry!r}: prefix length must be 0..{limit}", field=FIELD)
    return int(text)


def normalize_ip_ranges(text: str | None) -> str:
    """The canonical text to store: validated entries in canonical form, order kept, joined by commas.

    Raises InvalidIpRange like `parse_ip_ranges`. Normalising twice changes nothing.
    """
    return format_ip_ranges(parse_ip_ranges(text))


def format_ip_ranges(rules: Sequence[IpRangeRule]) -> str:
    """The text of parsed rules ("10.0.0.0/8,!10.1.0.0/16"), which parses back to the same rules."""
    return SEPARATOR.join(str(rule) for rule in rules)


def client_ip(address: str | None) -> Address | None:
    """The client address as an IP, or None when it is not one.

    Brackets and an IPv6 zone index are dropped; an IPv4-mapped IPv6 address (::ffff:a.b.c.d, as a
    dual-stack socket reports IPv4 peers) counts as the IPv4 address it carries.
    """
    text = (address or "").strip().removeprefix("[").removesuffix("]").split(_ZONE)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def admits(rules: Sequence[IpRangeRule], address: str | None) -> bool:
    """Whether a client at `address` may run the container's jobs.

    Rules are tried in order: a matching negated range rejects at once, a matching plain range admits.
    With no match: a list made only of negated ranges admits, any other list rejects. An empty list
    admits everyone; an address that is not an IP is admitted only by the empty list.
    """
    if not rules:
        return True
    ip = client_ip(address)
    if ip is None:
        return False
    for rule in rules:
        if rule.matches(ip):
            return not rule.negated
    return all(rule.negated for rule in rules)
