"""Software versions: how two compare, and a condition like "< 120" ("which computers have Firefox < 120").

A version is read as a sequence of tokens, in the spirit of dpkg and rpm:

- an optional epoch (`1:2.30`, dpkg's) is compared first; a version without one has epoch 0;
- runs of digits compare as numbers (`10` > `9`, `007` = `7`);
- runs of letters compare as text, without regard to case (`b` < `rc`);
- `~` marks a pre-release: it sorts before everything, even the end (`120.0~b3` < `120.0`);
- every other character only separates tokens (`1.2-3` = `1.2.3`, `1_2` = `1.2`);
- at the end, a version is less than one that goes on (`120` < `120.0` < `120.0.1`, `1.0` < `1.0a`).

At one position, a tilde < the end < letters < a number.

`version_key` encodes this order as an ASCII text that sorts byte by byte as the versions do, so the
database can compare versions (in a binary collation) without reading them row by row.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from oco.domain.errors import InvalidVersionCondition

VERSION_KEY_MAX = 512
"""Length of a stored version key; a longer one (a version of ~100 tokens) is cut: only its start counts."""

_EPOCH = re.compile(r"\s*([0-9]+):(.*)", re.DOTALL)
_TOKENS = re.compile(r"[0-9]+|[a-z]+|~")
_TILDE, _END, _LETTERS, _NUMBER = "0", "1", "2", "3"
_LETTERS_END = "!"  # sorts before every letter: "b" < "beta"


@functools.lru_cache(maxsize=16_384)
def version_key(version: str) -> str:
    """A text that sorts (byte by byte) as `version` does among versions; cut to VERSION_KEY_MAX.
    Remembered for the versions seen last: a fleet's inventories repeat the same few thousand."""
    match = _EPOCH.fullmatch(version)
    epoch, rest = (match.group(1), match.group(2)) if match else ("0", version)
    parts = [_number(epoch)]
    for token in _TOKENS.findall(rest.lower()):
        if token == "~":
            parts.append(_TILDE)
        elif token.isdigit():
            parts.append(_number(token))
        else:
            parts.append(_LETTERS + token + _LETTERS_END)
    parts.append(_END)
    return "".join(parts)[:VERSION_KEY_MAX]


def _number(digits: str) -> str:
    significant = digits.lstrip("0")
    # The length first, so that a longer number sorts after a shorter one; 3 digits hold any length
    # a 255-character version can have.
    return f"{_NUMBER}{len(significant):03d}{significant}"


def compare_versions(left: str, right: str) -> int:
    """-1, 0 or 1 as `left` is older than, the same as, or newer than `right`."""
    a, b = version_key(left), version_key(right)
    return (a > b) - (a < b)


_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    ">": operator.gt,
}
_CONDITION = re.compile(r"\s*(<=|>=|==|!=|<|>|=)?\s*(\S.*?)\s*", re.DOTALL)


@dataclass(frozen=True, slots=True)
class VersionCondition:
    """A comparison with a version: `operator` one of < <= = != >= >, `version` what it compares with."""

    operator: str
    version: str

    @property
    def key(self) -> str:
        """The version key to compare stored keys with."""
        return version_key(self.version)

    def matches(self, version: str) -> bool:
        """Whether `version` satisfies the condition."""
        return _OPERATORS[self.operator](version_key(version), self.key)

    def __str__(self) -> str:
        return f"{self.operator} {self.version}"


def parse_version_condition(text: str, field: str | None = None) -> VersionCondition:
    """Read "< 120", ">=1.2.3", "= 2.0" or a bare "2.0" (meaning "="); InvalidVersionCondition otherwise."""
    match = _CONDITION.fullmatch(text)
    if match is None or len(match.group(2)) > 255:
        raise InvalidVersionCondition(
            f"version condition {text!r}: expected an operator (< <= = != >= >) and a version, e.g. '< 120'",
            field=field,
        )
    symbol = match.group(1) or "="
    version = match.group(2)
    if version[0] in "<>=!":
        raise InvalidVersionCondition(f"version condition {text!r}: unknown operator", field=field)
    return VersionCondition("=" if symbol == "==" else symbol, version)
