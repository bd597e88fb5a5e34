"""Safe extraction of payload archives: nothing may land outside the job directory."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

EXECUTE_BITS = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
UNIX_MODE_SHIFT = 16
"""A zip member's Unix mode sits in the high 16 bits of its `external_attr`."""


class UnsafeArchive(Exception):
    """The archive is unreadable, or has a member with an absolute path, a `..` component or a link."""


def safe_extract(archive_path: Path, destination: Path) -> list[Path]:
    """Extract every member into `destination`, keeping execute bits.

    Every member is checked before anything is written: an absolute path, a `..` component or a
    symbolic link raises UnsafeArchive and leaves `destination` empty.
    """
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    extracted = []
    try:
        with zipfile.ZipFile(archive_path) as archive:
            members = archive.infolist()
            for member in members:
                _check(member, root)
            for member in members:
                target = Path(archive.extract(member, root))
                mode = member.external_attr >> UNIX_MODE_SHIFT
                if mode & EXECUTE_BITS and target.is_file():
                    target.chmod(target.stat().st_mode | (mode & EXECUTE_BITS))
                extracted.append(target)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise UnsafeArchive(f"the payload is not a readable zip archive: {exc}") from None
    return extracted


def _check(member: zipfile.ZipInfo, root: Path) -> None:
    name = member.filename
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith(("/", "\\")):
        raise UnsafeArchive(f"archive member {name!r} has an absolute path")
    if ".." in posix.parts or ".." in windows.parts:
        raise UnsafeArchive(f"archive member {name!r} leaves the job directory")
    if stat.S_ISLNK(member.external_attr >> UNIX_MODE_SHIFT):
        raise UnsafeArchive(f"archive member {name!r} is a symbolic link")
    if not (root / name).resolve().is_relative_to(root):
        raise UnsafeArchive(f"archive member {name!r} leaves the job directory")
