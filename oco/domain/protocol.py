"""Wire-level rules of the OCO agent protocol shared by the server and our agent (PROTOCOL.md).

Besides the method names and the HMAC signing, the limits of what an agent may send, declared once here
and documented in docs/security.md ("The agent API"): `load_request` parses a request body and refuses,
with a message naming the field, whatever breaks them — before anything reaches a use case or a database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from oco.domain.errors import InvalidAgentInput

SIGNATURE_HEADER_AGENT = "x-oco-agent-signature"
SIGNATURE_HEADER_SERVER = "x-oco-server-signature"
SHA256_HEADER = "x-oco-payload-sha256"


class AgentMethod(StrEnum):
    """The JSON-RPC methods of the agent endpoint."""

    HELLO = "oco.agent.hello"
    UPDATE = "oco.agent.update"
    UPDATE_JOB_STATE = "oco.agent.update_job_state"
    DOWNLOAD = "oco.agent.download"


def sign(key: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of the exact body bytes, keyed with `key`."""
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(key: str, body: bytes, signature: str | None) -> bool:
    """True when `signature` is the signature of `body` under `key`, compared in constant time.

    A signature holding anything but ASCII (a header may carry any byte) matches nothing.
    """
    if not key or not signature or not signature.isascii():
        return False
    return hmac.compare_digest(sign(key, body), signature.strip().lower())


# Limits of a request ------------------------------------------------------------------------------

MAX_JSON_DEPTH = 32
"""Nesting of arrays and objects in a request body (an OCO agent's inventory nests five deep)."""
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
"""Integers anywhere in a request: 64-bit signed, what every database column and agent can hold."""
MAX_ID = 2**31 - 1
"""Job and package ids: the databases' INTEGER."""
MAX_TEXT_CHARS = 16_384
"""Characters of any string (or object key) a request holds, but free text (`FREE_TEXT_FIELDS`)."""
MAX_NAME_CHARS = 255
"""Characters of a name the server stores in a column of its own (`NAME_FIELDS`)."""
MAX_NETWORK_INTERFACES = 1_024
"""Entries of `networks` in a hello or an inventory."""
MAX_LOGINS = 10_000
"""Entries of `logins` in an inventory (the logins since the last one)."""
NAME_FIELDS: Mapping[tuple[str, ...], int] = {
    ("params", "hostname"): MAX_NAME_CHARS,
    ("params", "uid"): MAX_NAME_CHARS,
    **{
        ("params", "data", name): MAX_NAME_CHARS
        for name in ("agent_version", "os", "os_version", "architecture", "kernel_version")
    },
}
"""Names the server stores in columns: no control character at all (not even a tab or a line break)."""
NETWORK_FIELD_LIMITS: Mapping[str, int] = {
    "interface": 255,
    "addr": 64,
    "address": 64,
    "netmask": 64,
    "broadcast": 64,
    "mac": 32,
}
"""Characters of each field of a network interface (the columns they are stored in)."""
COUNTED_LISTS: Mapping[tuple[str, ...], int] = {
    ("params", "data", "networks"): MAX_NETWORK_INTERFACES,
    ("params", "data", "logins"): MAX_LOGINS,
}
FREE_TEXT_FIELDS: frozenset[tuple[str, ...]] = frozenset({("params", "data", "message")})
"""A procedure's output: any length (the body limit bounds it, the server keeps the tail), and control
characters are replaced by U+FFFD rather than refused — a procedure may print anything, and its result
must not be lost for it."""
ALLOWED_CONTROLS = frozenset("\t\n\r")
"""The control characters a string other than a name may hold."""
REPLACEMENT = "\ufffd"

_NETWORKS = ("params", "data", "networks")


class _NotJson(Exception):
    """Python's parser met `NaN`, `Infinity` or `-Infinity`, which JSON does not have."""


def _refuse_constant(name: str) -> Any:
    raise _NotJson(name)


def load_request(body: bytes) -> Any:
    """The parsed request body, within the limits above (free text cleaned); InvalidAgentInput if not.

    `syntax` on the error tells a body that is not JSON at all from one that breaks a limit.
    """
    try:
        document = json.loads(body, parse_constant=_refuse_constant)
    except _NotJson as exc:
        raise InvalidAgentInput(
            f"body is not valid JSON: {exc.args[0]} is not a JSON number", syntax=True
        ) from None
    except RecursionError:
        raise InvalidAgentInput(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidAgentInput(f"body is not valid JSON: {exc}", syntax=True) from None
    return checked(document)


def checked(value: Any, path: tuple[str, ...] = (), depth: int = 0) -> Any:
    """`value` (a parsed document, or the part of one at `path`) within the limits, free text cleaned."""
    where = _where(path)
    if isinstance(value, dict | list) and depth >= MAX_JSON_DEPTH:
        raise InvalidAgentInput(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", field=where)
    if isinstance(value, dict):
        for key in value:
            _check_text(key, path, f"a key of {where or 'the body'}", MAX_NAME_CHARS, name=False)
        return {key: checked(item, (*path, key), depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        limit = COUNTED_LISTS.get(path)
        if limit is not None and len(value) > limit:
            raise InvalidAgentInput(f"{where} holds {len(value)} entries, more than {limit}", field=where)
        return [checked(item, (*path, f"[{index}]"), depth + 1) for index, item in enumerate(value)]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise InvalidAgentInput(f"{where} is an integer beyond 64 bits", field=where)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidAgentInput(f"{where} must be a finite number", field=where)
        return value
    if path in FREE_TEXT_FIELDS:
        return clean_free_text(value)
    limit = NAME_FIELDS.get(path) or _network_limit(path) or MAX_TEXT_CHARS
    _check_text(value, path, where, limit, name=path in NAME_FIELDS)
    return value


def _network_limit(path: tuple[str, ...]) -> int | None:
    if len(path) == len(_NETWORKS) + 2 and path[: len(_NETWORKS)] == _NETWORKS:
        return NETWORK_FIELD_LIMITS.get(path[-1])
    return None


def _check_text(text: str, path: tuple[str, ...], where: str, limit: int, *, name: bool) -> None:
    if len(text) > limit:
        raise InvalidAgentInput(f"{where} is longer than {limit} characters", field=_where(path))
    bad = forbidden_character(text, allow=frozenset() if name else ALLOWED_CONTROLS)
    if bad is not None:
        raise InvalidAgentInput(f"{where} holds the control character U+{ord(bad):04X}", field=_where(path))


def forbidden_character(text: str, allow: frozenset[str] = ALLOWED_CONTROLS) -> str | None:
    """The first control character (Unicode Cc: NUL, escapes, C1…) or lone surrogate of `text` that is
    not in `allow`; None when there is none."""
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cs") and char not in allow:
            return char
    return None


def clean_free_text(text: str) -> str:
    """`text` with every control character but tab and line breaks, and every lone surrogate, replaced
    by U+FFFD."""
    if forbidden_character(text) is None:
        return text
    return "".join(REPLACEMENT if forbidden_character(char) else char for char in text)


def _where(path: tuple[str, ...]) -> str:
    return "".join(part if part.startswith("[") else f".{part}" for part in path).lstrip(".")


def too_far_ahead(timestamp: float, now: datetime, max_ahead_seconds: float) -> bool:
    """Whether an agent's `timestamp` (Unix seconds) lies more than `max_ahead_seconds` ahead of the
    server's clock: accepted, it would refuse every later request of that computer as a replay until
    the computer's clock got there."""
    return timestamp > now.timestamp() + max_ahead_seconds
