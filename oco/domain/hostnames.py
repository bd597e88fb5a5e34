"""Hostnames: how they are written down and how two of them compare.

A computer is stored under its hostname without the domain part, as OCO agents send it ("pc01" for
"pc01.example.org"). Two hostnames name the same computer when they are equal after Unicode NFKC
normalization and without regard to case, as DNS and Windows compare them: "pc01" in full-width
letters (U+FF50 U+FF43 U+FF10 U+FF11) *is* "pc01" — it is stored as "pc01" and matched to that
computer, never registered as another one.

Characters a reader cannot see or that reorder what they see have no place in a hostname: control
characters, format characters (zero-width spaces and joiners, bidirectional overrides and marks, the
soft hyphen), separators, surrogates, private-use and unassigned code points are refused, so no name can
pass for another in the console.
"""

from __future__ import annotations

import unicodedata

from oco.domain.errors import InvalidHostname

HOSTNAME_MAX = 255
"""Characters of a stored hostname."""
FIELD = "hostname"
FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})
"""Unicode general categories no hostname holds: the invisible, the reordering and the blank."""


def normalize_hostname(hostname: str) -> str:
    """The hostname as stored: NFKC-normalized, blanks around it and the domain part dropped.

    Raises InvalidHostname for an empty name, one longer than HOSTNAME_MAX or one holding a character of
    FORBIDDEN_CATEGORIES (white space included).
    """
    name = unicodedata.normalize("NFKC", hostname).strip().split(".", 1)[0]
    if not name:
        raise InvalidHostname("hostname must not be empty", field=FIELD)
    if len(hostname_key(name)) > HOSTNAME_MAX:
        raise InvalidHostname(f"hostname {hostname!r} is not valid: longer than {HOSTNAME_MAX}", field=FIELD)
    bad = forbidden_character(name)
    if bad is not None:
        raise InvalidHostname(f"hostname {hostname!r} is not valid: it holds {_describe(bad)}", field=FIELD)
    return name


def forbidden_character(name: str) -> str | None:
    """The first character of `name` no hostname may hold, or None."""
    for char in name:
        if char.isspace() or unicodedata.category(char) in FORBIDDEN_CATEGORIES:
            return char
    return None


def hostname_key(hostname: str) -> str:
    """The form two hostnames share when they name the same computer (stored, indexed, looked up):
    NFKC, case-folded, NFKC again (case folding may leave a string that is not normalized)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", hostname).casefold())


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" {name}" if name else "")
