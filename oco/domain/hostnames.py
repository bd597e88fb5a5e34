"""Hostnames: how they are written down and how two of them compare.

A computer is stored under its hostname without the domain part, as OCO agents send it ("pc01" for
"pc01.example.org"). Two hostnames name the same computer when they are equal without regard to case, as
DNS and Windows compare them.
"""

from __future__ import annotations

from oco.domain.errors import InvalidHostname

HOSTNAME_MAX = 255
"""Characters of a stored hostname."""
FIELD = "hostname"


def normalize_hostname(hostname: str) -> str:
    """The hostname as stored: blanks around it and the domain part dropped.

    Raises InvalidHostname for an empty name, one longer than HOSTNAME_MAX or one holding white space.
    """
    name = hostname.strip().split(".", 1)[0]
    if not name:
        raise InvalidHostname("hostname must not be empty", field=FIELD)
    if len(hostname_key(name)) > HOSTNAME_MAX or any(c.isspace() for c in name):
        raise InvalidHostname(f"hostname {hostname!r} is not valid", field=FIELD)
    return name


def hostname_key(hostname: str) -> str:
    """The form two hostnames share when they name the same computer (stored, indexed, looked up)."""
    return hostname.casefold()
