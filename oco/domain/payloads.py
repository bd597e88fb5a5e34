"""The name an uploaded file gets inside the zip archive it is wrapped into.

Every agent (ours and OCO's) refuses an archive member with an absolute path, a drive, a `..` component or
a name that leaves the job directory, so an upload's name is reduced to a plain file name any file system
accepts: its last path component, without control, format (zero-width, bidirectional) or reserved
characters, never `.`/`..`, a Windows device name or empty.
"""

from __future__ import annotations

import re
import unicodedata

FALLBACK_NAME = "payload"
MAX_NAME_BYTES = 255
_RESERVED = re.compile(r'[<>:"|?*]')
"""Characters Windows refuses in a file name (the path separators are split on before)."""
_DROPPED_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"{port}{n}" for port in ("COM", "LPT") for n in range(1, 10)]
)
"""Names Windows reserves for devices, whatever the extension."""


def member_name(filename: str) -> str:
    """The file name `filename` (as a browser or client sent it) is stored under in a payload archive."""
    last = re.split(r"[/\\]", filename)[-1]
    kept = "".join(c for c in last if unicodedata.category(c) not in _DROPPED_CATEGORIES)
    name = _RESERVED.sub("_", unicodedata.normalize("NFC", kept)).strip().rstrip(". ")
    if not name.strip("."):
        return FALLBACK_NAME
    if name.split(".", 1)[0].strip().upper() in _DEVICES:
        name = "_" + name
    return _truncated(name)


def _truncated(name: str) -> str:
    """At most `MAX_NAME_BYTES` in UTF-8, keeping the extension where there is one."""
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or len(extension.encode()) > MAX_NAME_BYTES // 4:
        stem, dot, extension = name, "", ""
    room = MAX_NAME_BYTES - len((dot + extension).encode())
    return stem.encode()[:room].decode(errors="ignore") + dot + extension
