"""Safe extraction of payloads: nothing lands outside the job directory, execute bits survive."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from oco.agent.unpack import UnsafeArchive, safe_extract
from tests.support import write_zip


def test_extraction_keeps_execute_bits(tmp_path: Path) -> None:
    files = {"bin/setup.sh": "exit 0\n", "readme.txt": "hi"}
    path = write_zip(tmp_path / "payload.zip", files, modes={"readme.txt": 0o644})
    extracted = safe_extract(path, tmp_path / "job")
    assert sorted(p.name for p in extracted) == ["readme.txt", "setup.sh"]
    assert (tmp_path / "job" / "bin" / "setup.sh").stat().st_mode & stat.S_IXUSR
    assert not (tmp_path / "job" / "readme.txt").stat().st_mode & stat.S_IXUSR
    assert (tmp_path / "job" / "readme.txt").read_text() == "hi"


@pytest.mark.parametrize(
    "name",
    ["../x", "/etc/x", "a/../../x", "ok/../../../etc/x", "C:\\x.bat", "..\\x.bat", "\\\\server\\share\\x"],
)
def test_unsafe_names_are_refused_before_anything_is_written(tmp_path: Path, name: str) -> None:
    path = write_zip(tmp_path / "payload.zip", {"fine.txt": "x", name: "x"}, mode=0o644)
    with pytest.raises(UnsafeArchive):
        safe_extract(path, tmp_path / "job")
    assert list((tmp_path / "job").iterdir()) == []
    assert not (tmp_path / "x").exists()


def test_symbolic_links_are_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "payload.zip", {"link": "/etc/passwd"}, mode=stat.S_IFLNK | 0o777)
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        safe_extract(path, tmp_path / "job")
    assert not (tmp_path / "job" / "link").exists()


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "payload.zip"
    path.write_bytes(b"#!/bin/sh\necho not a zip\n")
    with pytest.raises(UnsafeArchive, match="not a readable zip"):
        safe_extract(path, tmp_path / "job")
