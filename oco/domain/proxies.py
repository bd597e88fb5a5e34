"""Reverse proxies: whose forwarding headers are believed, and what they say about the client.

Only a peer listed in `trusted_proxies` (addresses or CIDRs) may tell the client's address
(`X-Forwarded-For`) or that the client spoke HTTPS to it (`X-Forwarded-Proto`); anyone else could forge
them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

HTTPS = "https"


def is_trusted(address: str, proxies: Sequence[str]) -> bool:
    """Whether `address` is one of `proxies` or inside one of their networks (bad entries never match)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for proxy in proxies:
        try:
            if ip in ipaddress.ip_network(proxy, strict=False):
                return True
        except ValueError:
            continue
    return False


def client_address(peer: str, forwarded_for: str | None, proxies: Sequence[str]) -> str:
    """The TCP `peer`, or the `X-Forwarded-For` client when the peer is a trusted proxy.

    Walking from the nearest hop back, the first address not of a trusted proxy is the client.
    """
    if not forwarded_for or not is_trusted(peer, proxies):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


def client_used_https(scheme: str, peer: str, forwarded_proto: str | None, proxies: Sequence[str]) -> bool:
    """Whether the client's connection is HTTPS: ours (`scheme`), or a trusted proxy's that says so.

    A proxy chain lists one protocol per hop (`https, http`): the client's is the first one.
    """
    if scheme == HTTPS:
        return True
    if not forwarded_proto or not is_trusted(peer, proxies):
        return False
    return forwarded_proto.split(",")[0].strip().lower() == HTTPS
