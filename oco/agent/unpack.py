"""Safe extraction of payload archives: nothing may land outside the job directory."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

EXECUTE_BITS = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH


class UnsafeArchive(Exception):
    """The archive has a member with an absolute path, a `..` component or a link."""


def safe_extract(archive_path: Path, destination: Path) -> list[Path]:
    """Extract every member into `destination`, keeping execute bits; refuse unsafe names or links."""
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    extracted = []
    with zipfile.ZipFile(archive_path) as archive:
        members = archive.infolist()
        for member in members:
            _check(member, root)
        for member in members:
            target = Path(archive.extract(member, root))
            mode = (member.external_attr >> 16) & 0o7777
            if mode & EXECUTE_BITS and target.is_file():
                target.chmod(target.stat().st_mode | (mode & EXECUTE_BITS))
            extracted.append(target)
    return extracted


def _check(member: zipfile.ZipInfo, root: Path) -> None:
    name = member.filename
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith(("/", "\\")):
        raise UnsafeArchive(f"archive member {name!r} has an absolute path")
    if ".." in posix.parts or ".." in windows.parts:
        raise UnsafeArchive(f"archive member {name!r} leaves the job directory")
    if stat.S_ISLNK(member.external_attr >> 16):
        raise UnsafeArchive(f"archive member {name!r} is a symbolic link")
    if not (root / name).resolve().is_relative_to(root):
        raise UnsafeArchive(f"archive member {name!r} leaves the job directory")
