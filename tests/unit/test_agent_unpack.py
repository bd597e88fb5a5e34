"""Safe extraction of payloads: nothing lands outside the job directory, execute bits survive."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from oco.agent.unpack import UnsafeArchive, safe_extract


def archive(directory: Path, *members: tuple[str, str, int]) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, text, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, text)
    path = directory / "payload.zip"
    path.write_bytes(buffer.getvalue())
    return path


def test_extraction_keeps_execute_bits(tmp_path: Path) -> None:
    path = archive(tmp_path, ("bin/setup.sh", "exit 0\n", 0o755), ("readme.txt", "hi", 0o644))
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
    path = archive(tmp_path, ("fine.txt", "x", 0o644), (name, "x", 0o644))
    with pytest.raises(UnsafeArchive):
        safe_extract(path, tmp_path / "job")
    assert list((tmp_path / "job").iterdir()) == []
    assert not (tmp_path / "x").exists()


def test_symbolic_links_are_refused(tmp_path: Path) -> None:
    path = archive(tmp_path, ("link", "/etc/passwd", stat.S_IFLNK | 0o777))
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        safe_extract(path, tmp_path / "job")
    assert not (tmp_path / "job" / "link").exists()


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "payload.zip"
    path.write_bytes(b"#!/bin/sh\necho not a zip\n")
    with pytest.raises(UnsafeArchive, match="not a readable zip"):
        safe_extract(path, tmp_path / "job")
