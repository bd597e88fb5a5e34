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
import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from oco.domain.errors import InvalidAgentInput

SIGNATURE_HEADER_AGENT = "x-oco-agent-signature"
SIGNATURE_HEADER_SERVER = "x-oco-server-signature"
SHA256_HEADER = "x-oco-payload-sha256"
FOLLOWS_REDIRECT_HEADER = "x-oco-follows-redirect"
"""Sent by OCO Deploy's agent with a download: it follows a redirect to a signed URL (domain/depots.py)."""


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
"""Characters of any string or object key a request holds, but free text (`FREE_TEXT_FIELDS`)."""
MAX_NAME_CHARS = 255
"""Characters of a name the server stores in a column of its own (`NAME_FIELDS`)."""
MAX_NETWORK_INTERFACES = 1_024
"""Entries of `networks` in a hello or an inventory."""
MAX_LOGINS = 10_000
"""Entries of `logins` in an inventory (the logins since the last one)."""
NAME_FIELDS: Mapping[tuple[str | int, ...], int] = {
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
COUNTED_LISTS: Mapping[tuple[str | int, ...], int] = {
    ("params", "data", "networks"): MAX_NETWORK_INTERFACES,
    ("params", "data", "logins"): MAX_LOGINS,
}
FREE_TEXT_FIELDS: frozenset[tuple[str | int, ...]] = frozenset({("params", "data", "message")})
"""A procedure's output: any length (the body limit bounds it, the server keeps the tail), and control
characters are replaced by U+FFFD rather than refused — a procedure may print anything, and its result
must not be lost for it. The other strings of `params.data` that are no name or network field (software,
screens, CPU… of an inventory) get the same: a monitor's EDID or a package's description can hold
control characters, and an OCO agent would otherwise have its whole inventory refused every time."""
ALLOWED_CONTROLS = "\t\n\r"
"""The control characters a string other than a name may hold."""
REPLACEMENT = "\ufffd"

_DATA = ("params", "data")
_NETWORKS = (*_DATA, "networks")


class _NotJson(Exception):
    """Python's parser met `NaN`, `Infinity` or `-Infinity`, which JSON does not have."""


def _refuse_constant(name: str) -> Any:
    raise _NotJson(name)


def load_request(body: bytes) -> Any:
    """The parsed request body, within the limits above (free text cleaned); InvalidAgentInput if not.

    `syntax` on the error tells a body that is not JSON at all from one that breaks a limit.
    """
    if _plainly_small(body):
        try:
            document = json.loads(
                body, parse_constant=_refuse_constant, parse_int=_int64, parse_float=_finite
            )
        except _NotJson as exc:
            raise InvalidAgentInput(
                f"body is not valid JSON: {exc.args[0]} is not a JSON number", syntax=True
            ) from None
        except _BeyondLimits:
            pass  # `checked` below names the number
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidAgentInput(f"body is not valid JSON: {exc}", syntax=True) from None
        else:
            if _plain_fields(document):
                return document
    return checked(_parse(body))  # names the field that breaks a limit, or passes (a long output, say)


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except _NotJson as exc:
        raise InvalidAgentInput(
            f"body is not valid JSON: {exc.args[0]} is not a JSON number", syntax=True
        ) from None
    except RecursionError:
        raise InvalidAgentInput(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidAgentInput(f"body is not valid JSON: {exc}", syntax=True) from None


# The hot path: a steady agent's hello is a few hundred bytes. Such a body holds no string longer than
# MAX_TEXT_CHARS and nests no deeper than its brackets; JSON has no raw control character in a string, so
# one can only come as an escape — `\u0008`, or the short `\b` and `\f` — or as DEL or a C1 character's
# UTF-8 bytes, which a search of the bytes finds (an escaped backslash before a `b` takes the long way too).
_BODY_CONTROL = re.compile(
    rb"\\(?:u(?:00[0189][0-9a-fA-F]|001[0-9a-fA-F]|007[fF]|[dD][89a-fA-F][0-9a-fA-F]{2})|[bf])"
    rb"|\xc2[\x80-\x9f]|\x7f"
)


def _plainly_small(body: bytes) -> bool:
    return (
        len(body) <= MAX_TEXT_CHARS
        and b"\x00" not in body  # UTF-8 (UTF-16 and UTF-32 bodies take the long way)
        and body.count(b"[") + body.count(b"{") < MAX_JSON_DEPTH
        and not ((b"\\" in body or b"\xc2" in body or b"\x7f" in body) and _BODY_CONTROL.search(body))
    )


class _BeyondLimits(Exception):
    """A number the hot path leaves to `checked` to name."""


def _int64(text: str) -> int:
    value = int(text)
    if not INT_MIN <= value <= INT_MAX:
        raise _BeyondLimits
    return value


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BeyondLimits
    return value


_DATA_NAMES = tuple(str(path[2]) for path in NAME_FIELDS if len(path) == 3)


def _plain_fields(document: Any) -> bool:
    """Whether the fields with limits of their own keep them (the hot path's part of `checked`)."""
    params = document.get("params") if isinstance(document, dict) else None
    if not isinstance(params, dict):
        return True
    if not _plain_names(params, ("hostname", "uid")):
        return False
    data = params.get("data")
    if not isinstance(data, dict):
        return True
    if not _plain_names(data, _DATA_NAMES):
        return False
    logins = data.get("logins")
    if isinstance(logins, list) and len(logins) > MAX_LOGINS:
        return False
    networks = data.get("networks")
    if isinstance(networks, list):
        if len(networks) > MAX_NETWORK_INTERFACES:
            return False
        for entry in networks:
            if isinstance(entry, dict):
                for field, limit in NETWORK_FIELD_LIMITS.items():
                    value = entry.get(field)
                    if isinstance(value, str) and len(value) > limit:
                        return False
    return True


def _plain_names(values: dict[str, Any], names: tuple[str, ...]) -> bool:
    for name in names:
        value = values.get(name)
        if isinstance(value, str) and (len(value) > MAX_NAME_CHARS or _CONTROL_IN_NAME.search(value)):
            return False
    return True


def checked(value: Any, path: tuple[str | int, ...] = (), depth: int = 0) -> Any:
    """`value` (a parsed document, or the part of one at `path`) within the limits, free text cleaned.

    On every request's hot path: the message naming the field is built only for a refusal.
    """
    if isinstance(value, str):
        return _checked_text(value, path)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise _refusal("{where} is an integer beyond 64 bits", path)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _refusal("{where} must be a finite number", path)
        return value
    if depth >= MAX_JSON_DEPTH:
        raise _refusal(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", path)
    if isinstance(value, dict):
        for key in value:
            if len(key) > MAX_TEXT_CHARS:
                raise _refusal(f"a key of {{where}} is longer than {MAX_TEXT_CHARS} characters", path)
            bad = _CONTROL.search(key)
            if bad is not None:
                raise _refusal(f"a key of {{where}} holds the control character {_code(bad[0])}", path)
        return {key: checked(item, (*path, key), depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        limit = COUNTED_LISTS.get(path)
        if limit is not None and len(value) > limit:
            raise _refusal(f"{{where}} holds {len(value)} entries, more than {limit}", path)
        return [checked(item, (*path, index), depth + 1) for index, item in enumerate(value)]
    return value


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
"""A control character (Unicode Cc) other than tab and line breaks, or a lone surrogate (Cs)."""
_CONTROL_IN_NAME = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""Any control character or lone surrogate."""


def _checked_text(text: str, path: tuple[str | int, ...]) -> str:
    if path in FREE_TEXT_FIELDS:
        return clean_free_text(text)
    name_limit = NAME_FIELDS.get(path)
    network_limit = _network_limit(path)
    limit = name_limit or network_limit or MAX_TEXT_CHARS
    if len(text) > limit:
        raise _refusal(f"{{where}} is longer than {limit} characters", path)
    bad = (_CONTROL_IN_NAME if name_limit else _CONTROL).search(text)
    if bad is None:
        return text
    if name_limit is None and network_limit is None and path[: len(_DATA)] == _DATA:
        return clean_free_text(text)  # the inventory document: what the computer says, kept readable
    raise _refusal(f"{{where}} holds the control character {_code(bad[0])}", path)


def _network_limit(path: tuple[str | int, ...]) -> int | None:
    if len(path) == len(_NETWORKS) + 2 and path[: len(_NETWORKS)] == _NETWORKS:
        field = path[-1]
        return NETWORK_FIELD_LIMITS.get(field) if isinstance(field, str) else None
    return None


def forbidden_character(text: str) -> str | None:
    """The first control character (Unicode Cc: NUL, escapes, C1…) other than tab and line breaks, or
    lone surrogate, of `text`; None when there is none."""
    found = _CONTROL.search(text)
    return found[0] if found is not None else None


def clean_free_text(text: str) -> str:
    """`text` with every control character but tab and line breaks, and every lone surrogate, replaced
    by U+FFFD."""
    return _CONTROL.sub(REPLACEMENT, text)


def _code(char: str) -> str:
    return f"U+{ord(char):04X}"


def _refusal(message: str, path: tuple[str | int, ...]) -> InvalidAgentInput:
    where = _where(path)
    return InvalidAgentInput(message.replace("{where}", where or "the body"), field=where or None)


def _where(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")


def too_far_ahead(timestamp: float, now: datetime, max_ahead_seconds: float) -> bool:
    """Whether an agent's `timestamp` (Unix seconds) lies more than `max_ahead_seconds` ahead of the
    server's clock: accepted, it would refuse every later request of that computer as a replay until
    the computer's clock got there."""
    return timestamp > now.timestamp() + max_ahead_seconds
