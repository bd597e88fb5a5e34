"""Agent IP range constraints of a job container (seed "Agent IP Range Constraint", DESIGN.md rules).

A constraint is an ordered, comma-separated list of IPv4/IPv6 networks; `!` in front negates one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from oco.domain.errors import InvalidIpRange

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
NEGATION = "!"


@dataclass(frozen=True, slots=True)
class IpRangeRule:
    network: Network
    negated: bool

    def __str__(self) -> str:
        return f"{NEGATION if self.negated else ''}{self.network}"


def parse_ip_ranges(text: str | None) -> tuple[IpRangeRule, ...]:
    """Parse the constraint text; an address without prefix is one host. Raises InvalidIpRange."""
    rules = []
    for item in (text or "").split(","):
        entry = item.strip()
        if entry:
            rules.append(_parse_entry(entry))
    return tuple(rules)


def _parse_entry(entry: str) -> IpRangeRule:
    negated = entry.startswith(NEGATION)
    spec = entry[1:].strip() if negated else entry
    if not spec:
        raise InvalidIpRange(
            f"IP range {entry!r}: '!' must be followed by a network", field="agent_ip_ranges"
        )
    address, _, prefix = spec.partition("/")
    try:
        host = ipaddress.ip_address(address.strip())
    except ValueError:
        raise InvalidIpRange(
            f"IP range {entry!r}: {address.strip()!r} is not an IPv4 or IPv6 address", field="agent_ip_ranges"
        ) from None
    if prefix:
        limit = host.max_prefixlen
        if not prefix.strip().isdigit() or not 0 <= int(prefix) <= limit:
            raise InvalidIpRange(
                f"IP range {entry!r}: prefix length must be 0..{limit}", field="agent_ip_ranges"
            )
        # Host bits are tolerated (10.1.2.3/16 means 10.1.0.0/16), as admins often write them.
        network = ipaddress.ip_network(f"{host}/{int(prefix)}", strict=False)
    else:
        network = ipaddress.ip_network(host)
    return IpRangeRule(network=network, negated=negated)


def normalize_ip_ranges(text: str | None) -> str:
    """The canonical text to store: validated entries joined by commas, order kept."""
    return ",".join(str(rule) for rule in parse_ip_ranges(text))


def client_ip(address: str) -> Address | None:
    """The client address as an IP; IPv4-mapped IPv6 (::ffff:a.b.c.d) counts as IPv4."""
    try:
        ip = ipaddress.ip_address(address.strip().split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def admits(rules: tuple[IpRangeRule, ...], address: str) -> bool:
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
        if ip.version == rule.network.version and ip in rule.network:
            return not rule.negated
    return all(rule.negated for rule in rules)
