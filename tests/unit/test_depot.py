"""The depot: content addressing, streaming writes, zipping of non-zip uploads, range reads."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from oco.depot import DepotError, DepotFull, DirectoryDepot
from tests.support import zip_bytes


def test_a_stream_is_stored_under_its_sha256(tmp_path: Path) -> None:
    depot = DirectoryDepot(tmp_path)
    data = b"x" * 3_000_000
    stored = depot.put_stream([data[:1000], data[1000:]])
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert depot.path(stored.sha256) == tmp_path / stored.sha256[:2] / stored.sha256
    assert depot.path(stored.sha256).read_bytes() == data
    assert not list(tmp_path.glob(".upload-*"))


def test_storing_the_same_bytes_twice_keeps_one_file(tmp_path: Path) -> None:
    depot = DirectoryDepot(tmp_path)
    first = depot.put_stream([b"same"])
    second = depot.put_stream([b"same"])
    assert first == second
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 1


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    depot = DirectoryDepot(tmp_path)

    def broken():  # type: ignore[no-untyped-def]
        yield b"partial"
        raise OSError("connection lost")

    with pytest.raises(OSError):
        depot.put_stream(broken())
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_an_upload_that_is_not_a_zip_is_zipped_under_its_name(tmp_path: Path) -> None:
    depot = DirectoryDepot(tmp_path / "depot")
    stored = depot.put_upload(io.BytesIO(b"MZ installer bytes"), "C:\\setup.exe")
    with zipfile.ZipFile(depot.path(stored.sha256)) as archive:
        assert archive.namelist() == ["setup.exe"]  # a plain name: agents refuse a drive or a path
        assert archive.read(archive.namelist()[0]) == b"MZ installer bytes"


def test_a_zip_upload_is_kept_byte_for_byte(tmp_path: Path) -> None:
    payload = zip_bytes({"a.txt": "a"}, mode=0o644)
    depot = DirectoryDepot(tmp_path)
    stored = depot.put_upload(io.BytesIO(payload), "p.zip")
    assert depot.path(stored.sha256).read_bytes() == payload


def test_range_reads_return_the_inclusive_slice(tmp_path: Path) -> None:
    depot = DirectoryDepot(tmp_path)
    data = bytes(range(256)) * 10_000
    stored = depot.put_stream([data])
    assert b"".join(depot.iter_range(stored.sha256, 10, 19)) == data[10:20]
    assert b"".join(depot.iter_range(stored.sha256, len(data) - 5)) == data[-5:]
    assert b"".join(depot.iter_range(stored.sha256)) == data


def test_bad_digests_and_missing_payloads_are_clear_errors(tmp_path: Path) -> None:
    depot = DirectoryDepot(tmp_path)
    with pytest.raises(DepotError, match="not a SHA-256"):
        depot.path("../../etc/passwd")
    with pytest.raises(DepotError, match="missing"):
        depot.open("0" * 64)
    with pytest.raises(DepotError, match="does not exist"):
        depot.put_file(tmp_path / "nope.zip")


# Out of space ---------------------------------------------------------------------------------------


class Disk:
    """A file system whose free space the test drives: `free` bytes, less what was written since."""

    def __init__(self, root: Path, free: int) -> None:
        self.root, self.free = root, free

    def __call__(self, _path: Path) -> int:
        written = sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())
        return max(self.free - written, 0)


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name != ".lock"]


def test_an_upload_larger_than_the_free_space_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    depot = DirectoryDepot(tmp_path, disk_free=Disk(tmp_path, 1500))
    with pytest.raises(DepotFull, match=r"^depot out of space \(needed 2000 bytes, free 1500 bytes\)$"):
        depot.put_upload(io.BytesIO(zip_bytes({"a": "x"})[:4] + b"\0" * 1996), "p.zip")
    with pytest.raises(DepotFull, match=r"needed 5000 bytes, free 1500 bytes"):
        depot.put_upload(io.BytesIO(b"MZ" + b"\0" * 4998), "setup.exe")
    assert stored_files(tmp_path) == []


def test_the_reserve_is_kept_free(tmp_path: Path) -> None:
    depot = DirectoryDepot(tmp_path, reserve_bytes=1000, disk_free=Disk(tmp_path, 2500))
    assert depot.free() == 1500
    depot.put_stream([b"x" * 1000])  # fits: 1000 of 1500
    with pytest.raises(DepotFull, match=r"free 500 bytes"):
        depot.put_stream([b"y" * 1000], expected_size=1000)


def test_a_stream_that_outgrows_the_free_space_stops_and_leaves_nothing(tmp_path: Path) -> None:
    depot = DirectoryDepot(tmp_path, disk_free=Disk(tmp_path, 25_000))
    chunks = [b"a" * 10_000, b"b" * 10_000, b"c" * 10_000]  # larger than a write buffer: on disk at once
    with pytest.raises(DepotFull, match=r"depot out of space \(needed 10000 bytes more, free 5000 bytes\)"):
        depot.put_stream(iter(chunks))  # no size known in advance
    assert stored_files(tmp_path) == []


def test_the_real_file_system_is_asked_by_default(tmp_path: Path) -> None:
    depot = DirectoryDepot(tmp_path, reserve_bytes=10**18)  # more than any disk: nothing fits
    assert depot.free() == 0
    with pytest.raises(DepotFull, match="free 0 bytes"):
        depot.put_upload(io.BytesIO(b"a script"), "install.sh")
    assert stored_files(tmp_path) == []


def test_the_settings_pick_the_directory_unless_an_object_store_is_named(tmp_path: Path) -> None:
    from oco.config import Settings
    from oco.services.runtime import depot_of

    depot = depot_of(Settings(data_dir=tmp_path, depot_reserve_bytes=5))
    assert isinstance(depot, DirectoryDepot)
    assert (depot.root, depot.reserve_bytes) == (tmp_path / "depot", 5)
    assert depot.signed_url("0" * 64, 60, "1.zip") is None  # a directory cannot sign: downloads stream


def test_an_object_store_without_its_client_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from oco.config import ConfigError, Settings
    from oco.services.runtime import depot_of

    monkeypatch.setitem(sys.modules, "boto3", None)  # as if the s3 extra were not installed
    monkeypatch.delitem(sys.modules, "oco.depot.s3", raising=False)
    with pytest.raises(ConfigError, match=r"pip install 'oco-deploy\[s3\]'"):
        depot_of(Settings(data_dir=tmp_path, depot_url="s3://oco-payloads/site"))
