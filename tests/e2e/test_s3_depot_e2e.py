"""End to end with the object-store depot: a real S3-compatible server (moto's process), real `oco server`
processes keeping payloads in its bucket, a package uploaded with the CLI and over the API, and real `oco
agent` processes that download and install it, resuming an interrupted download with `Range`.

Two servers share one database and one bucket: one redirects agents that ask for it to signed URLs
(`depot_redirect=ours`), one streams everything itself (`never`); a third redirects every agent (`always`)
and is downloaded from the way OCO agents do (python-requests). What reached the store, and from whom, is
read from the S3 server's request recording.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.s3server import CREDENTIALS, S3Server, need_moto, start_s3_server

need_moto()

from oco.domain.states import JobState  # noqa: E402
from oco.services import containers, deployments, packages  # noqa: E402
from oco.services.deployments import ContainerOptions, DeploymentRequest  # noqa: E402
from oco.services.runtime import Runtime  # noqa: E402
from oco.services.targets import Targets  # noqa: E402
from tests.agentclient import ProtocolClient  # noqa: E402
from tests.conftest import make_runtime  # noqa: E402
from tests.e2e.test_agent_e2e import RealAgent, World, make_agent  # noqa: E402
from tests.live import HTTP_TIMEOUT_S, REGISTRATION_KEY, LiveServer, start_server  # noqa: E402

BUCKET = "oco-payloads"
PREFIX = "site-a"
PASSWORD = "a long password"
FILLER = hashlib.sha256(b"seed").digest() * 40_000  # 1.2 MiB that do not compress away


@dataclass
class Site:
    s3: S3Server
    redirecting: LiveServer
    streaming: LiveServer
    rt: Runtime
    root: Path
    depot: dict[str, str]

    def world(self, server: LiveServer) -> World:
        return World(server, self.rt, self.root)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("s3-site")
    with pytest.MonkeyPatch.context() as patch, ExitStack() as started:  # stopped even if setup fails
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)  # the servers and admin commands inherit them
        s3 = start_s3_server(root / "s3")
        started.callback(s3.stop)
        s3.create_bucket(BUCKET)
        shutil.copy(sqlite_template, root / "oco.sqlite3")
        url = f"sqlite:///{root / 'oco.sqlite3'}"
        depot = {
            "depot_url": f"s3://{BUCKET}/{PREFIX}",
            "depot_s3_endpoint_url": s3.url,
            "self_registration": "true",
            # One spool directory, so the servers (and admin commands) share the depot's lock file.
            "depot_path": str(root / "spool"),
        }
        (root / "a").mkdir()
        (root / "b").mkdir()
        redirecting = start_server(root / "a", url, depot_redirect="ours", **depot)
        started.callback(redirecting.stop)
        streaming = start_server(root / "b", url, depot_redirect="never", **depot)
        started.callback(streaming.stop)
        rt = make_runtime(
            url, root, depot_url=depot["depot_url"], depot_s3_endpoint_url=s3.url, depot_path=root / "spool"
        )
        started.callback(rt.close)
        yield Site(s3, redirecting, streaming, rt, root, depot)


_counter = iter(range(1, 10_000))


def upload_with_cli(site: Site, family: str) -> tuple[int, bytes]:
    """A package whose payload (a zip with an install script and 1.2 MiB of data) the CLI stores."""
    payload = site.root / f"{family}.zip"
    with zipfile.ZipFile(payload, "w") as archive:
        script = zipfile.ZipInfo("install.sh")
        script.external_attr = 0o755 << 16
        archive.writestr(script, f'cmp data.bin data.bin && echo installed > "$MARKERS/{family}"\n')
        archive.writestr("data.bin", FILLER)
    created = site.redirecting.oco(
        "package", "add", "--family", family, "--version", "1", "--install", "./install.sh",
        "--payload", str(payload),
    )  # fmt: skip
    return int(created.stdout.strip()), payload.read_bytes()


def deploy(site: Site, agents: list[str], package_id: int) -> int:
    request = DeploymentRequest(ContainerOptions(name="s3"), Targets(computers=agents, packages=[package_id]))
    return deployments.create_deployment(site.rt, request, "admin").id


def key_of(payload: bytes) -> str:
    digest = hashlib.sha256(payload).hexdigest()
    return f"{PREFIX}/{digest[:2]}/{digest}"


def interrupt_download(agent: RealAgent, package_id: int, payload: bytes, kept: int) -> None:
    """Leave what an agent keeps of a download cut off after `kept` bytes."""
    downloads = agent.state_dir / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    (downloads / f"{package_id}.part").write_bytes(payload[:kept])
    (downloads / f"{package_id}.sha256").write_text(hashlib.sha256(payload).hexdigest())


def from_agents(requests: list[dict[str, object]]) -> list[dict[str, object]]:
    """The requests not sent by the servers' S3 client (boto3)."""
    return [r for r in requests if not str(_headers(r).get("User-Agent", "")).startswith("Boto3")]


def _headers(request: dict[str, object]) -> dict[str, str]:
    headers = request["headers"]
    assert isinstance(headers, dict)
    return headers


def test_an_agent_resumes_its_download_straight_from_the_object_store(site: Site) -> None:
    package_id, payload = upload_with_cli(site, "Redirected")
    agent = make_agent(site.world(site.redirecting), f"s3-pc{next(_counter)}")
    interrupt_download(agent, package_id, payload, kept=500_000)
    container = deploy(site, [agent.hostname], package_id)

    run = agent.run()

    [job] = containers.container_detail(site.rt, container).jobs
    assert (job.state, job.return_code) == (JobState.SUCCEEDED, 0), run.stdout + run.stderr
    assert (agent.marker_dir / "Redirected").read_text() == "installed\n"
    [fetched] = from_agents(site.s3.gets_of(key_of(payload)))
    assert _headers(fetched)["Range"] == "bytes=500000-"  # only the missing part, from the store
    assert "X-Amz-Signature=" in str(fetched["url"])
    assert len(site.s3.gets_of(key_of(payload))) == 1  # the server read none of it


def test_a_server_that_streams_resumes_with_a_ranged_get_object(site: Site) -> None:
    package_id, payload = upload_with_cli(site, "Streamed")
    agent = make_agent(site.world(site.streaming), f"s3-pc{next(_counter)}")
    interrupt_download(agent, package_id, payload, kept=700_000)
    container = deploy(site, [agent.hostname], package_id)

    run = agent.run()

    [job] = containers.container_detail(site.rt, container).jobs
    assert (job.state, job.return_code) == (JobState.SUCCEEDED, 0), run.stdout + run.stderr
    assert (agent.marker_dir / "Streamed").read_text() == "installed\n"
    gets = site.s3.gets_of(key_of(payload))
    assert from_agents(gets) == []  # the agent talked to the server only
    assert [_headers(r)["Range"] for r in gets] == [f"bytes=700000-{len(payload) - 1}"]


def test_oco_agents_are_streamed_to_unless_every_agent_is_redirected(site: Site) -> None:
    package_id, payload = upload_with_cli(site, "Classic")
    client = ProtocolClient(site.redirecting.url, f"oco-pc{next(_counter)}", REGISTRATION_KEY)
    client.hello()
    deploy(site, [client.hostname], package_id)

    whole = client.download(package_id)  # no x-oco-follows-redirect: streamed, even by this server
    resumed = client.download(package_id, {"range": "bytes=1000-"})

    assert (whole.status_code, whole.content) == (200, payload)
    assert whole.headers["x-oco-payload-sha256"] == hashlib.sha256(payload).hexdigest()
    assert (resumed.status_code, resumed.content) == (206, payload[1000:])
    assert resumed.headers["content-range"] == f"bytes 1000-{len(payload) - 1}/{len(payload)}"
    assert from_agents(site.s3.gets_of(key_of(payload))) == []


def test_with_always_an_oco_agent_follows_the_redirect_like_python_requests_does(
    site: Site, tmp_path: Path
) -> None:
    requests = pytest.importorskip("requests", reason="python-requests (what OCO agents use) is missing")
    server = start_server(
        tmp_path,
        site.rt.settings.database_url,
        depot_redirect="always",
        depot_url_ttl_seconds="60",
        **site.depot,
    )
    try:
        package_id, payload = upload_with_cli(site, "Followed")
        client = ProtocolClient(server.url, f"oco-pc{next(_counter)}", REGISTRATION_KEY)
        client.hello()
        deploy(site, [client.hostname], package_id)
        body = client.body("oco.agent.download", None, **{"package-id": package_id})
        headers = {"content-type": "application/json", "x-oco-agent-signature": client.sign(body)}

        # OCO-Agent's downloadFile: requests.get(url, stream=True, data=…, headers=…), redirects followed
        with requests.get(
            f"{server.url}/api-agent.php", data=body, headers=headers, stream=True, timeout=HTTP_TIMEOUT_S
        ) as response:
            response.raise_for_status()
            received = b"".join(response.iter_content(chunk_size=8192))
            hops = [(r.status_code, r.headers.get("x-oco-payload-sha256")) for r in response.history]

        assert received == payload
        assert hops == [(302, hashlib.sha256(payload).hexdigest())]
        [fetched] = from_agents(site.s3.gets_of(key_of(payload)))
        assert "X-Amz-Expires=60" in str(fetched["url"])
        assert "Content-Length" not in _headers(fetched)  # the JSON body stayed with the server
    finally:
        server.stop()


def test_the_api_stores_uploads_in_the_bucket_and_deleting_removes_them(site: Site) -> None:
    site.redirecting.oco("user", "add", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    token = site.redirecting.oco("token", "create", "--name", f"t{next(_counter)}").stdout.strip()
    payload = b"MZ" + os.urandom(4096)  # not a zip: the depot wraps it
    with httpx.Client(
        base_url=f"{site.redirecting.url}/api/v1",
        headers={"authorization": f"Bearer {token}"},
        timeout=HTTP_TIMEOUT_S,
    ) as api:
        created = api.post(
            "/packages",
            data={"family": "Uploaded", "version": "1", "install_procedure": "setup.exe /S"},
            files={"payload": ("setup.exe", payload)},
        )
        assert created.status_code == 201, created.text
        digest = created.json()["payload_sha256"]
        stored = site.s3.client().get_object(Bucket=BUCKET, Key=f"{PREFIX}/{digest[:2]}/{digest}")["Body"]
        with zipfile.ZipFile(io.BytesIO(stored.read())) as archive:
            assert archive.read("setup.exe") == payload

        assert api.delete(f"/packages/{created.json()['id']}").status_code in (200, 204)
    assert not packages.list_packages(site.rt, "Uploaded")
    listing = site.s3.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/{digest[:2]}/{digest}")
    assert listing.get("KeyCount", 0) == 0


def test_each_server_says_at_start_where_the_payloads_are_and_how_they_reach_agents(site: Site) -> None:
    where = f"Depot: s3://{BUCKET}/{PREFIX} at {site.s3.url}"
    ours = "(downloads of OCO Deploy agents redirected to signed URLs, streamed to OCO agents)"
    assert f"{where} {ours}" in site.redirecting.log.read_text()
    assert f"{where} (downloads streamed by the server)" in site.streaming.log.read_text()
