"""The object-store depot against a real S3-compatible server (moto's, a process on 127.0.0.1): storing
under the digest, ranged reads, zipping, deleting, room and quota, signed URLs, an unreachable store, and
the package use cases on top of it."""

from __future__ import annotations

import hashlib
import io
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.s3server import CREDENTIALS, S3Server, need_moto, start_s3_server

need_moto()

from sqlalchemy import create_engine, text  # noqa: E402

from oco.depot import DepotError, DepotFull, DirectoryDepot, open_depot  # noqa: E402
from oco.depot.s3 import S3Depot  # noqa: E402
from oco.errors import DepotUnavailable  # noqa: E402
from oco.services import packages, payloadlock  # noqa: E402
from oco.services.runtime import Runtime  # noqa: E402
from tests.conftest import make_runtime  # noqa: E402
from tests.support import zip_bytes  # noqa: E402

BUCKET = "oco-depot"
_buckets = iter(range(1, 10_000))


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        server = start_s3_server(tmp_path_factory.mktemp("s3"))
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def bucket(s3: S3Server) -> str:
    name = f"{BUCKET}-{next(_buckets)}"
    s3.create_bucket(name)
    return name


def depot(s3: S3Server, bucket: str, spool: Path, **options: object) -> S3Depot:
    store = open_depot(f"s3://{bucket}/site/payloads", spool, s3_endpoint_url=s3.url, **options)  # type: ignore[arg-type]
    assert isinstance(store, S3Depot)
    return store


def keys(s3: S3Server, bucket: str) -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_a_stream_is_stored_under_its_sha256_below_the_prefix(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    store = depot(s3, bucket, tmp_path)
    data = b"x" * 3_000_000
    stored = store.put_stream([data[:1000], data[1000:]])
    digest = hashlib.sha256(data).hexdigest()
    assert (stored.sha256, stored.size) == (digest, len(data))
    assert keys(s3, bucket) == [f"site/payloads/{digest[:2]}/{digest}"]
    assert store.exists(digest) and store.size(digest) == len(data)
    assert b"".join(store.iter_range(digest)) == data
    assert not list(tmp_path.glob(".upload-*"))  # the spool is gone


def test_a_payload_larger_than_a_part_goes_up_in_parts_and_reads_back(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    store = depot(s3, bucket, tmp_path)
    mib = 1 << 20
    data = bytes(range(256)) * (20 * 4096)  # 20 MiB: three parts of at most 8 MiB
    stored = store.put_stream(data[i : i + mib] for i in range(0, len(data), mib))
    assert b"".join(store.iter_range(stored.sha256)) == data
    uploads = [r for r in s3.requests() if r["method"] == "PUT" and "partNumber=" in r["url"]]
    assert len(uploads) == 3


def test_ranges_are_read_with_get_object_range(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    store = depot(s3, bucket, tmp_path)
    data = bytes(range(256)) * 100
    digest = store.put_stream([data]).sha256
    assert b"".join(store.iter_range(digest, 1000, 1999)) == data[1000:2000]
    assert b"".join(store.iter_range(digest, 25_000)) == data[25_000:]
    assert b"".join(store.iter_range(digest, 0, 0)) == data[:1]
    ranges = [r["headers"].get("Range") for r in s3.gets_of(store.key(digest))]
    assert ranges[-3:] == ["bytes=1000-1999", "bytes=25000-", "bytes=0-0"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=3000), st.tuples(st.integers(0, 3000), st.integers(0, 3000)))
def test_both_depots_answer_every_range_alike(
    s3: S3Server, bucket: str, tmp_path: Path, data: bytes, bounds: tuple[int, int]
) -> None:
    start, end = min(bounds[0], len(data) - 1), min(max(bounds), len(data) - 1)
    start = min(start, end)
    stores = [depot(s3, bucket, tmp_path / "spool"), DirectoryDepot(tmp_path / "directory")]
    for store in stores:
        digest = store.put_stream([data]).sha256
        assert b"".join(store.iter_range(digest, start, end)) == data[start : end + 1]
        assert b"".join(store.iter_range(digest, start)) == data[start:]
        assert store.size(digest) == len(data)


def test_storing_the_same_bytes_twice_keeps_one_object(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    store = depot(s3, bucket, tmp_path)
    assert store.put_stream([b"same"]) == store.put_stream([b"same"])
    assert len(keys(s3, bucket)) == 1


def test_a_failed_stream_leaves_nothing(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    store = depot(s3, bucket, tmp_path)

    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise OSError("connection lost")

    with pytest.raises(OSError, match="connection lost"):
        store.put_stream(broken())
    assert keys(s3, bucket) == []
    assert not list(tmp_path.glob(".upload-*"))


def test_an_upload_that_is_no_zip_is_wrapped_into_one(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    store = depot(s3, bucket, tmp_path)
    stored = store.put_upload(io.BytesIO(b"#!/bin/sh\necho hi\n"), "C:\\setup\\install.sh")
    with zipfile.ZipFile(io.BytesIO(b"".join(store.iter_range(stored.sha256)))) as archive:
        assert archive.read("install.sh") == b"#!/bin/sh\necho hi\n"
    archive_bytes = zip_bytes({"a.txt": "a"})
    assert (
        store.put_upload(io.BytesIO(archive_bytes), "p.zip").sha256
        == hashlib.sha256(archive_bytes).hexdigest()
    )


def test_a_deleted_payload_is_missing(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    store = depot(s3, bucket, tmp_path)
    digest = store.put_stream([b"gone soon"]).sha256
    store.delete(digest)
    store.delete(digest)  # deleting twice is no error
    assert not store.exists(digest)
    with pytest.raises(DepotError, match="missing from the depot"):
        store.size(digest)
    with pytest.raises(DepotError, match="missing from the depot"):
        b"".join(store.iter_range(digest))
    with pytest.raises(DepotError, match="not a SHA-256 digest"):
        store.exists("../../etc/passwd")


def test_the_quota_refuses_what_does_not_fit_and_keeps_nothing(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    store = depot(s3, bucket, tmp_path, max_bytes=10_000)
    store.put_stream([b"a" * 6_000])
    assert store.used_bytes() == 6_000
    assert store.free() == 4_000
    with pytest.raises(DepotFull, match=r"needed 5000 bytes, free 4000 bytes"):
        store.put_stream([b"b" * 5_000])  # size unknown before: refused once spooled
    with pytest.raises(DepotFull, match=r"needed 5000 bytes, free 4000 bytes"):
        store.put_upload(io.BytesIO(b"c" * 5_000), "big.bin")  # size known: refused before spooling
    assert store.used_bytes() == 6_000
    assert not list(tmp_path.glob(".upload-*"))


def test_the_spool_must_leave_the_reserve_free(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    store = depot(s3, bucket, tmp_path, reserve_bytes=10**18)  # more than any disk: nothing fits
    with pytest.raises(DepotFull, match="depot out of space"):
        store.put_stream([b"x"])
    assert keys(s3, bucket) == []


def test_a_signed_url_serves_ranges_to_anyone_for_its_lifetime(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    store = depot(s3, bucket, tmp_path)
    data = bytes(range(256)) * 64
    digest = store.put_stream([data]).sha256
    url = store.signed_url(digest, 300, "7.zip")
    assert url is not None and "X-Amz-Signature=" in url and "X-Amz-Expires=300" in url
    whole = httpx.get(url)
    assert (whole.status_code, whole.content) == (200, data)
    assert whole.headers["content-disposition"] == 'attachment; filename="7.zip"'
    part = httpx.get(url, headers={"range": "bytes=100-"})
    assert (part.status_code, part.content) == (206, data[100:])
    assert part.headers["content-range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    # moto checks no expiry (a real store refuses the URL after X-Amz-Expires seconds from X-Amz-Date):
    # what is checked here is that the URL says so.
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["300"] and query["X-Amz-SignedHeaders"] == ["host"]
    assert query["X-Amz-Date"][0].startswith(time.strftime("%Y%m%d", time.gmtime()))


def test_an_unreachable_store_is_unavailable_not_missing(tmp_path: Path, s3: S3Server) -> None:
    from tests.live import free_port

    store = open_depot("s3://nowhere/p", tmp_path, s3_endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(DepotUnavailable, match="object store"):
        store.exists("0" * 64)
    with pytest.raises(DepotUnavailable, match="object store"):
        store.put_stream([b"lost"])
    assert not list(tmp_path.glob(".upload-*"))


def test_a_bucket_that_does_not_exist_is_unavailable(s3: S3Server, tmp_path: Path) -> None:
    store = open_depot("s3://no-such-bucket/p", tmp_path, s3_endpoint_url=s3.url)
    with pytest.raises(DepotUnavailable, match="NoSuchBucket"):
        store.put_stream([b"x"])


@pytest.fixture
def s3_rt(s3: S3Server, bucket: str, sqlite_url: str, tmp_path: Path) -> Iterator[Runtime]:
    runtime = make_runtime(sqlite_url, tmp_path, depot_url=f"s3://{bucket}/oco", depot_s3_endpoint_url=s3.url)
    yield runtime
    runtime.close()


def test_packages_keep_their_payloads_in_the_object_store(s3: S3Server, bucket: str, s3_rt: Runtime) -> None:
    spec = packages.PackageSpec(family="Editor", version="1.0", install_procedure="./install.sh")
    payload = zip_bytes({"install.sh": "echo hi"})
    first = packages.create_package(
        s3_rt, spec, lambda d: d.put_upload(io.BytesIO(payload), "p.zip"), "admin"
    )
    second = packages.create_package(
        s3_rt,
        packages.PackageSpec(family="Editor", version="2.0", install_procedure="./install.sh"),
        lambda d: d.put_upload(io.BytesIO(payload), "p.zip"),
        "admin",
    )
    digest = hashlib.sha256(payload).hexdigest()
    assert first.payload_sha256 == second.payload_sha256 == digest
    assert keys(s3, bucket) == [f"oco/{digest[:2]}/{digest}"]

    packages.remove_package(s3_rt, first.id, "admin")
    assert keys(s3, bucket) == [f"oco/{digest[:2]}/{digest}"]  # version 2.0 still uses it
    packages.remove_package(s3_rt, second.id, "admin")
    assert keys(s3, bucket) == []


def test_a_package_refused_after_its_payload_was_stored_leaves_no_object(
    s3: S3Server, bucket: str, s3_rt: Runtime
) -> None:
    spec = packages.PackageSpec(family="Broken", version="1.0", install_procedure="   ")
    with pytest.raises(Exception, match="install procedure must not be empty"):
        packages.create_package(s3_rt, spec, lambda d: d.put_stream([b"orphan"]), "admin")
    assert keys(s3, bucket) == []


@pytest.fixture(params=["postgres", "mysql"])
def server_database_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty PostgreSQL or MariaDB database: what replicas on several machines share."""
    from tests.conftest import empty_tables

    engine = request.getfixturevalue(f"{request.param}_engine")
    empty_tables(engine)
    return str(engine.url.render_as_string(hide_password=False))


def _waiting_for_the_depot_lock(url: str) -> bool:
    """Whether a connection of this database waits for the depot's lock (not another test's lock)."""
    engine = create_engine(url)
    if engine.dialect.name == "postgresql":
        query = (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = 0 "
            "AND objid = :key AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    else:
        query = (
            "SELECT count(*) FROM information_schema.processlist "
            "WHERE db = DATABASE() AND info LIKE 'SELECT GET_LOCK%'"
        )
    try:
        with engine.connect() as connection:
            return bool(connection.execute(text(query), {"key": payloadlock.LOCK_KEY}).scalar())
    finally:
        engine.dispose()


def test_a_replica_deleting_waits_for_another_replica_storing_the_same_payload(
    s3: S3Server, bucket: str, server_database_url: str, tmp_path: Path
) -> None:
    """Two replicas on one bucket with spools (and file locks) of their own: replica B deletes the last
    package using a payload while replica A stores it again for a new package. B's deletion must wait
    for A's package to commit, then see the payload in use and keep it."""
    settings = {"depot_url": f"s3://{bucket}/oco", "depot_s3_endpoint_url": s3.url}
    rt_a = make_runtime(server_database_url, tmp_path / "a", **settings)
    rt_b = make_runtime(server_database_url, tmp_path / "b", **settings)
    payload = zip_bytes({"install.sh": "echo shared"})
    digest = hashlib.sha256(payload).hexdigest()
    old = packages.create_package(
        rt_b,
        packages.PackageSpec(family="Shared", version="1", install_procedure="./install.sh"),
        lambda d: d.put_upload(io.BytesIO(payload), "p.zip"),
        "admin",
    )
    stored, proceed, errors = threading.Event(), threading.Event(), []

    def store_and_hold(store: object) -> packages.StoredPayload:
        result = store.put_upload(io.BytesIO(payload), "p.zip")  # type: ignore[attr-defined]
        stored.set()
        assert proceed.wait(120)
        return result

    def replica_a() -> None:
        try:
            spec = packages.PackageSpec(family="Shared", version="2", install_procedure="./install.sh")
            packages.create_package(rt_a, spec, store_and_hold, "admin")
        except Exception as exc:  # reported by the main thread
            errors.append(exc)

    def replica_b() -> None:
        try:
            packages.remove_package(rt_b, old.id, "admin")
        except Exception as exc:
            errors.append(exc)

    a = threading.Thread(target=replica_a)
    a.start()
    try:
        assert stored.wait(120)
        b = threading.Thread(target=replica_b)
        b.start()
        deadline = time.monotonic() + 120
        while not _waiting_for_the_depot_lock(server_database_url) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _waiting_for_the_depot_lock(server_database_url)  # B waits for A's lock
        assert b.is_alive()
    finally:
        proceed.set()
        a.join(120)
    b.join(120)
    assert errors == []
    assert [p.version for p in packages.list_packages(rt_a, "Shared")] == ["2"]
    assert keys(s3, bucket) == [f"oco/{digest[:2]}/{digest}"]  # still there for version 2
    rt_a.close()
    rt_b.close()
