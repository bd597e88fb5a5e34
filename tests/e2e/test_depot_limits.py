"""Uploads against a real server: a full depot answers 507 from the API and the console with nothing
half-stored, and an upload's name never makes a payload the agents refuse."""

from __future__ import annotations

import io
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from oco.agent.unpack import safe_extract
from tests.live import LiveServer, start_server

PASSWORD = "a long password"
NO_SPACE = re.compile(r"depot out of space \(needed \d+ bytes, free 0 bytes\)")
EVERY_DISK = str(10**18)
"""A reserve larger than any disk: the depot has no room at all."""


def start(workdir: Path, sqlite_template: Path, **settings: str) -> LiveServer:
    shutil.copy(sqlite_template, workdir / "oco.sqlite3")
    live = start_server(workdir, f"sqlite:///{workdir / 'oco.sqlite3'}", **settings)
    live.oco("user", "add", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    return live


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[LiveServer]:
    live = start(tmp_path_factory.mktemp("full-depot"), sqlite_template, depot_reserve_bytes=EVERY_DISK)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def roomy(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[LiveServer]:
    live = start(tmp_path_factory.mktemp("depot"), sqlite_template, depot_reserve_bytes="0")
    yield live
    live.stop()


def api_client(server: LiveServer) -> httpx.Client:
    token = server.oco("token", "create", "--name", "tests").stdout.strip()
    return httpx.Client(base_url=f"{server.url}/api/v1", headers={"authorization": f"Bearer {token}"})


def console_client(server: LiveServer) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=server.url)
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', client.get("/login").text)
    assert login_csrf
    client.post("/login", data={"username": "admin", "password": PASSWORD, "login_csrf": login_csrf.group(1)})
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/packages/new").text)
    assert token
    return client, token.group(1)


def payloads(server: LiveServer) -> list[Path]:
    depot = Path(server.env["OCO_DEPOT_PATH"])
    return [p for p in depot.rglob("*") if p.is_file() and p.name != ".lock"] if depot.exists() else []


FORM = {"family": "Tool", "version": "1", "install_procedure": "./install.sh"}


@pytest.mark.parametrize(
    ("name", "content"),
    [("payload.zip", None), ("setup.exe", b"MZ" + b"\0" * 4096)],
    ids=["zip", "zipped-on-upload"],
)
def test_the_api_answers_507_when_the_depot_is_full(
    full: LiveServer, name: str, content: bytes | None
) -> None:
    body = content or zip_of({"install.sh": "true\n"})
    with api_client(full) as api:
        response = api.post("/packages", data=FORM, files={"payload": (name, body)})

        assert response.status_code == 507, response.text
        assert NO_SPACE.fullmatch(response.json()["detail"])
        assert api.get("/packages").json() == []
    assert payloads(full) == []


@pytest.mark.parametrize("accept", ["text/html", "application/json"], ids=["form", "upload-script"])
def test_the_console_answers_507_when_the_depot_is_full(full: LiveServer, accept: str) -> None:
    client, token = console_client(full)
    try:
        response = client.post(
            "/packages/new",
            data={**FORM, "csrf_token": token},
            files={"payload": ("payload.zip", zip_of({"install.sh": "true\n"}))},
            headers={"accept": accept},
        )
        assert response.status_code == 507
        assert NO_SPACE.search(response.json()["error"] if accept == "application/json" else response.text)
        assert "Tool" not in client.get("/packages").text
    finally:
        client.close()
    assert payloads(full) == []


def test_a_package_without_a_payload_needs_no_depot_space(full: LiveServer) -> None:
    with api_client(full) as api:
        response = api.post("/packages", data={**FORM, "family": "Script only"})
    assert response.status_code == 201


@pytest.mark.parametrize("name", ["..", "../../evil.sh", "C:\\temp\\setup.exe", "bad\x01name\u202e.sh", "."])
def test_an_upload_with_any_name_stays_deployable(roomy: LiveServer, tmp_path: Path, name: str) -> None:
    with api_client(roomy) as api:
        created = api.post(
            "/packages", data={**FORM, "family": f"Named {name!r}"}, files={"payload": (name, b"echo hi\n")}
        )
    assert created.status_code == 201, created.text
    stored = (
        Path(roomy.env["OCO_DEPOT_PATH"])
        / created.json()["payload_sha256"][:2]
        / created.json()["payload_sha256"]
    )

    extracted = safe_extract(stored, tmp_path / "job")  # what every agent does with the download

    assert [path.read_bytes() for path in extracted] == [b"echo hi\n"]
    with zipfile.ZipFile(stored) as archive:
        [member] = archive.namelist()
    assert "/" not in member and "\\" not in member and member not in (".", "..")


def zip_of(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return buffer.getvalue()
