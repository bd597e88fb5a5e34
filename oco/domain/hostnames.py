"""How hostnames compare: without regard to case, as DNS and Windows do."""

from __future__ import annotations


def hostname_key(hostname: str) -> str:
    """The form two hostnames share when they name the same computer (stored, indexed, looked up)."""
    return hostname.casefold()
