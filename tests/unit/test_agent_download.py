"""Payload downloads resume with Range after an interruption and are verified before use — against the
SHA-256 and size the (signed) job names, never against the download's own headers.

The depot here is a small HTTP server on 127.0.0.1 that honours Range and can cut answers midway.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from oco.agent.client import AgentClient, ProtocolError
from oco.agent.config import AgentConfig
from oco.agent.downloader import (
    ChecksumMismatch,
    DownloadAbandoned,
    DownloadError,
    DownloadInterrupted,
    download_payload,
    prune_downloads,
)
from oco.domain.dispatch import PayloadDigest

PAYLOAD = bytes(range(256)) * 8192  # 2 MiB
SERVER_POLL_S = 0.05
EXPECTED = PayloadDigest(hashlib.sha256(PAYLOAD).hexdigest(), len(PAYLOAD))
"""What the job in the hello answer says the payload is."""


@dataclass
class Depot:
    """How the test server behaves; `ranges` records the Range header of each request."""

    payload: bytes = PAYLOAD
    announce: str = "header"  # "header", "etag" or "none"
    digest: str = hashlib.sha256(PAYLOAD).hexdigest()
    cuts: int = 0  # how many of the next answers stop halfway
    honour_range: bool = True
    status: int = 0  # answer this status instead of the payload
    length_header: bool = True  # without it the body ends when the connection closes
    redirect_to: str = ""  # answer a 302 to this URL instead (an object-store depot's signed URL)
    ranges: list[str | None] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    """The headers of each request, and its body as `_body`."""


def make_handler(depot: Depot) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            sent = self.rfile.read(int(self.headers.get("content-length", 0)))
            depot.ranges.append(self.headers.get("range"))
            depot.requests.append({**{k.lower(): v for k, v in self.headers.items()}, "_body": sent.decode()})
            if depot.redirect_to:
                self.send_response(302)
                self.send_header("location", depot.redirect_to)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            if depot.status:
                self.send_response(depot.status)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            start = 0
            if depot.honour_range and self.headers.get("range"):
                start = int(self.headers["range"].removeprefix("bytes=").rstrip("-"))
            if start >= len(depot.payload):
                self.send_response(416)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            body = depot.payload[start:]
            self.send_response(206 if start else 200)
            if depot.length_header:
                self.send_header("content-length", str(len(body)))
            if start:
                self.send_header(
                    "content-range", f"bytes {start}-{len(depot.payload) - 1}/{len(depot.payload)}"
                )
            if depot.announce == "header":
                self.send_header("x-oco-payload-sha256", depot.digest)
            elif depot.announce == "etag":
                self.send_header("etag", f'"{depot.digest}"')
            self.end_headers()
            if depot.cuts:
                depot.cuts -= 1
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    return Handler


@pytest.fixture
def depot() -> Depot:
    return Depot()


@contextmanager
def serving(depot: Depot) -> Iterator[str]:
    """The test server answering as `depot` says, on 127.0.0.1; yields its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(depot))
    thread = threading.Thread(target=server.serve_forever, args=(SERVER_POLL_S,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def store() -> Iterator[tuple[Depot, str]]:
    """An object store a download may be redirected to: the same kind of server, its own behaviour."""
    behaviour = Depot(announce="none")
    with serving(behaviour) as url:
        yield behaviour, f"{url}/bucket/7f/payload?X-Amz-Signature=abc"


@pytest.fixture
def client(tmp_path: Path, depot: Depot) -> Iterator[AgentClient]:
    with serving(depot) as url, _agent_client(tmp_path, url) as agent_client:
        yield agent_client


@contextmanager
def _agent_client(tmp_path: Path, url: str) -> Iterator[AgentClient]:
    config = AgentConfig(
        server_url=url,
        registration_key="k",
        state_dir=str(tmp_path / "state"),
        hostname="pc1",
        uid="u",
    )
    agent_client = AgentClient(config, tmp_path / "agent.toml")
    try:
        yield agent_client
    finally:
        agent_client.close()


def fetch(client: AgentClient, package_id: int, directory: Path, *args: object, **kwargs: object) -> Path:
    """`download_payload` of a job that names EXPECTED, unless `expected` is given."""
    kwargs.setdefault("expected", EXPECTED)
    return download_payload(client, package_id, directory, *args, **kwargs)  # type: ignore[arg-type]


def test_an_interrupted_download_is_kept_and_resumed_with_range(
    client: AgentClient, depot: Depot, tmp_path: Path
) -> None:
    depot.cuts = 1
    with pytest.raises(DownloadInterrupted, match="interrupted after"):
        fetch(client, 7, tmp_path / "dl", lambda _p: None, attempts=1)
    kept = (tmp_path / "dl" / "7.part").stat().st_size
    assert 0 < kept < len(PAYLOAD)

    progress: list[int] = []
    done = fetch(client, 7, tmp_path / "dl", progress.append)

    assert depot.ranges == [None, f"bytes={kept}-"]
    assert done.read_bytes() == PAYLOAD and done.name == "7.zip"
    assert progress == [100]  # fast downloads are not reported byte by byte
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["7.zip"]


def test_a_cut_within_one_job_is_retried_from_where_it_stopped(
    client: AgentClient, depot: Depot, tmp_path: Path
) -> None:
    depot.cuts = 2
    done = fetch(client, 7, tmp_path / "dl", lambda _p: None, retry_pause_s=0)
    assert done.read_bytes() == PAYLOAD
    assert depot.ranges[0] is None and all(r and r.startswith("bytes=") for r in depot.ranges[1:])
    assert len(depot.ranges) == 3


def test_a_swapped_payload_with_a_matching_header_is_refused_and_deleted(
    client: AgentClient, depot: Depot, tmp_path: Path
) -> None:
    swapped = b"evil" * (len(PAYLOAD) // 4)  # same size, another payload, its own digest announced
    depot.payload, depot.digest = swapped, hashlib.sha256(swapped).hexdigest()
    with pytest.raises(ChecksumMismatch, match=r"^payload digest does not match the signed job"):
        fetch(client, 8, tmp_path / "dl", lambda _p: None)
    assert list((tmp_path / "dl").iterdir()) == []


def test_a_swapped_payload_without_any_header_is_refused_after_the_download(
    client: AgentClient, depot: Depot, tmp_path: Path
) -> None:
    depot.payload, depot.announce = b"evil" * (len(PAYLOAD) // 4), "none"
    with pytest.raises(ChecksumMismatch, match=f"^payload digest does not match.*{EXPECTED.sha256}"):
        fetch(client, 8, tmp_path / "dl", lambda _p: None)
    assert depot.ranges == [None]  # downloaded whole, then verified and deleted
    assert list((tmp_path / "dl").iterdir()) == []


def test_a_download_that_announces_another_size_is_refused_before_reading_it(
    client: AgentClient, depot: Depot, tmp_path: Path
) -> None:
    depot.payload, depot.announce = PAYLOAD + b"more", "none"
    with pytest.raises(ChecksumMismatch, match=f"announces {len(PAYLOAD) + 4} bytes"):
        fetch(client, 8, tmp_path / "dl", lambda _p: None)
    assert list((tmp_path / "dl").iterdir()) == []


def test_a_download_longer_than_the_job_says_is_cut_off_not_stored(
    client: AgentClient, depot: Depot, tmp_path: Path
) -> None:
    depot.payload, depot.announce, depot.length_header = PAYLOAD * 3, "none", False
    with pytest.raises(ChecksumMismatch, match=f"longer than {len(PAYLOAD)} bytes"):
        fetch(client, 8, tmp_path / "dl", lambda _p: None)
    assert list((tmp_path / "dl").iterdir()) == []


def test_a_header_naming_another_digest_than_the_job_is_refused(
    client: AgentClient, depot: Depot, tmp_path: Path
) -> None:
    depot.digest = "0" * 64
    with pytest.raises(ChecksumMismatch, match="announces SHA-256 0000"):
        fetch(client, 8, tmp_path / "dl", lambda _p: None)
    assert list((tmp_path / "dl").iterdir()) == []


def test_a_resumed_download_is_verified_as_a_whole(client: AgentClient, depot: Depot, tmp_path: Path) -> None:
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "9.part").write_bytes(b"X" * 1000)  # garbage from an earlier, different attempt
    (tmp_path / "dl" / "9.sha256").write_text(depot.digest)
    with pytest.raises(ChecksumMismatch):
        fetch(client, 9, tmp_path / "dl", lambda _p: None)
    assert depot.ranges == ["bytes=1000-"] and list((tmp_path / "dl").iterdir()) == []


def test_no_header_is_needed_the_job_names_the_digest(
    client: AgentClient, depot: Depot, tmp_path: Path
) -> None:
    depot.announce = "none"
    assert fetch(client, 1, tmp_path / "dl", lambda _p: None).read_bytes() == PAYLOAD


def test_an_etag_is_not_taken_for_a_digest(client: AgentClient, depot: Depot, tmp_path: Path) -> None:
    depot.announce, depot.digest = "etag", "0" * 64
    assert fetch(client, 1, tmp_path / "dl", lambda _p: None).read_bytes() == PAYLOAD


def test_a_complete_partial_file_is_verified_without_asking_again(
    client: AgentClient, depot: Depot, tmp_path: Path
) -> None:
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "5.part").write_bytes(PAYLOAD)  # the agent stopped before renaming it
    (tmp_path / "dl" / "5.sha256").write_text(EXPECTED.sha256)
    assert fetch(client, 5, tmp_path / "dl", lambda _p: None).read_bytes() == PAYLOAD
    assert depot.ranges == []


def test_a_server_that_ignores_range_makes_the_download_start_over(
    client: AgentClient, depot: Depot, tmp_path: Path
) -> None:
    depot.cuts, depot.honour_range = 1, False
    done = fetch(client, 3, tmp_path / "dl", lambda _p: None, retry_pause_s=0)
    assert done.read_bytes() == PAYLOAD and depot.ranges[1] is not None


def test_a_partial_file_of_another_payload_version_is_dropped(
    client: AgentClient, depot: Depot, tmp_path: Path
) -> None:
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "4.part").write_bytes(PAYLOAD[:1000])
    (tmp_path / "dl" / "4.sha256").write_text("f" * 64)  # the package was replaced since
    done = fetch(client, 4, tmp_path / "dl", lambda _p: None, retry_pause_s=0)
    assert done.read_bytes() == PAYLOAD and depot.ranges == [None]


def test_a_refused_download_is_an_agent_error(client: AgentClient, depot: Depot, tmp_path: Path) -> None:
    depot.status = 401
    with pytest.raises(DownloadError, match="401"):
        fetch(client, 5, tmp_path / "dl", lambda _p: None)


def test_a_stopping_agent_abandons_the_download_and_keeps_the_bytes(
    client: AgentClient, depot: Depot, tmp_path: Path
) -> None:
    with pytest.raises(DownloadAbandoned):
        fetch(client, 6, tmp_path / "dl", lambda _p: None, should_stop=lambda: True)
    assert (tmp_path / "dl" / "6.part").stat().st_size > 0
    assert fetch(client, 6, tmp_path / "dl", lambda _p: None).read_bytes() == PAYLOAD
    assert depot.ranges[1] is not None


def test_a_partial_file_longer_than_the_payload_starts_over(
    client: AgentClient, depot: Depot, tmp_path: Path
) -> None:
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "2.part").write_bytes(PAYLOAD + b"junk")
    (tmp_path / "dl" / "2.sha256").write_text(EXPECTED.sha256)
    done = fetch(client, 2, tmp_path / "dl", lambda _p: None, retry_pause_s=0)
    assert done.read_bytes() == PAYLOAD and depot.ranges == [None]


def test_pruning_keeps_the_wanted_packages_and_foreign_files(tmp_path: Path) -> None:
    for name in ("1.part", "1.sha256", "2.part", "2.sha256", "3.zip", "12.part", "x.part", "README"):
        (tmp_path / name).write_text("x")
    (tmp_path / "4.part").mkdir()  # not a file we wrote: left alone

    deleted = prune_downloads(tmp_path, wanted={1, 12})

    assert sorted(path.name for path in deleted) == ["2.part", "2.sha256", "3.zip"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "1.part",
        "1.sha256",
        "12.part",
        "4.part",
        "README",
        "x.part",
    ]


def test_pruning_a_missing_directory_does_nothing(tmp_path: Path) -> None:
    assert prune_downloads(tmp_path / "absent", wanted=set()) == []


def test_a_redirect_to_the_object_store_is_followed_with_the_range_and_no_body(
    client: AgentClient, depot: Depot, store: tuple[Depot, str], tmp_path: Path
) -> None:
    behaviour, url = store
    depot.redirect_to = url
    behaviour.cuts = 1
    with pytest.raises(DownloadInterrupted, match="interrupted after"):
        fetch(client, 7, tmp_path / "dl", lambda _p: None, attempts=1)
    kept = (tmp_path / "dl" / "7.part").stat().st_size

    done = fetch(client, 7, tmp_path / "dl", lambda _p: None)

    assert done.read_bytes() == PAYLOAD
    assert [r.get("x-oco-follows-redirect") for r in depot.requests] == ["1", "1"]
    assert depot.ranges == [None, f"bytes={kept}-"]
    assert behaviour.ranges == [None, f"bytes={kept}-"]
    for request in behaviour.requests:  # the store gets neither the JSON body nor the agent's signature
        assert request["_body"] == "" and "x-oco-agent-signature" not in request


def test_an_expired_signed_url_is_retried_through_the_server(
    client: AgentClient, depot: Depot, store: tuple[Depot, str], tmp_path: Path
) -> None:
    behaviour, url = store
    depot.redirect_to = url
    behaviour.status = 403
    with pytest.raises(DownloadInterrupted, match="object store answered 403"):
        fetch(client, 7, tmp_path / "dl", lambda _p: None, retry_pause_s=0)
    assert len(depot.requests) == 3  # every try asked the server for a new URL

    behaviour.status = 0
    assert fetch(client, 7, tmp_path / "dl", lambda _p: None).read_bytes() == PAYLOAD


def test_a_store_that_does_not_answer_is_an_interrupted_download(
    client: AgentClient, depot: Depot, tmp_path: Path
) -> None:
    depot.redirect_to = "http://127.0.0.1:9/bucket/payload"  # discard port: nothing listens
    with pytest.raises(DownloadInterrupted, match=r"the object store 127\.0\.0\.1"):
        fetch(client, 7, tmp_path / "dl", lambda _p: None, attempts=1)


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/payload"])
def test_a_redirect_elsewhere_than_http_is_refused(
    client: AgentClient, depot: Depot, tmp_path: Path, location: str
) -> None:
    depot.redirect_to = location
    with pytest.raises(ProtocolError, match="redirected to a"):
        fetch(client, 7, tmp_path / "dl", lambda _p: None)
    assert not (tmp_path / "dl" / "7.zip").exists()


def test_the_store_redirecting_again_is_not_followed(
    client: AgentClient, depot: Depot, store: tuple[Depot, str], tmp_path: Path
) -> None:
    behaviour, url = store
    depot.redirect_to = url
    behaviour.redirect_to = url
    with pytest.raises(DownloadInterrupted, match="the object store answered 302"):
        fetch(client, 7, tmp_path / "dl", lambda _p: None, retry_pause_s=0)
    assert len(behaviour.requests) == 3  # once per try, never a second hop
