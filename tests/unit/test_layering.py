"""The layering the build keeps (`lint-imports` checks the import arrows; this checks the calls).

Entry points parse, call one use case and render: a unit of work is opened only by the use cases
(`oco.services`), never by the admin API, the console or the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import oco

ROOT = Path(oco.__file__).parent
ENTRY_POINTS = [
    *sorted(path for package in ("api", "web", "cli") for path in (ROOT / package).rglob("*.py")),
    ROOT / "application.py",
    ROOT / "processes.py",
]
UNITS_OF_WORK = {"transaction", "reading", "read", "connect", "begin"}
NOT_A_DATABASE = {"sys.stdin", "sys.stdin.buffer"}
"""Receivers whose `read` reads input, not the database."""


@pytest.mark.parametrize("path", ENTRY_POINTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_entry_points_open_no_unit_of_work(path: Path) -> None:
    calls = [
        node.func.attr
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in UNITS_OF_WORK
        and ast.unparse(node.func.value) not in NOT_A_DATABASE
    ]
    assert calls == [], f"{path.name} opens {calls}: call a use case of oco.services instead"


def test_there_are_entry_points_to_check() -> None:
    assert len(ENTRY_POINTS) > 15
