"""The console's writes wait off the event loop: agents are answered meanwhile.

One server process answers the console and every managed computer's check-in on one event loop. A console
POST whose use case waits (a transaction, a large upload being stored) must wait in the thread pool; on the
loop, it would hold up every check-in of the process until it is done.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from oco.depot.directory import DirectoryDepot
from oco.web.app import install_console
from oco.web.session import checked_form
from tests.agentclient import ProtocolClient
from tests.live import HTTP_TIMEOUT_S, REGISTRATION_KEY, LiveServer, start_server
from tests.support import api_routes, wait_until, zip_bytes

PASSWORD = "a long password"
PROC_LOCKS = Path("/proc/locks")
PUBLIC_POSTS = {"/login"}
"""Console POSTs without a session: the login form, read by FastAPI itself."""


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    live = start_server(tmp_path, database_url, self_registration="true")
    live.oco("user", "add", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    yield live
    live.stop()


def logged_in(server: LiveServer) -> tuple[httpx.Client, str]:
    """A console client with a session, and the session's CSRF token."""
    client = httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT_S)
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', client.get("/login").text)
    assert login_csrf
    answer = client.post(
        "/login", data={"username": "admin", "password": PASSWORD, "login_csrf": login_csrf.group(1)}
    )
    assert answer.status_code == 303, answer.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/packages/new").text)
    assert csrf
    return client, csrf.group(1)


def waits_for_lock(lock_file: Path, pid: int) -> bool:
    """Whether process `pid` is blocked asking for the `flock` of `lock_file` (the kernel lists each
    waiter in /proc/locks, after `->`)."""
    inode = str(lock_file.stat().st_ino)
    for line in PROC_LOCKS.read_text().splitlines():
        fields = line.split()
        if fields[1:3] == ["->", "FLOCK"] and fields[5] == str(pid) and fields[6].split(":")[-1] == inode:
            return True
    return False


def test_an_agent_is_answered_while_an_upload_waits_for_the_depot(server: LiveServer, tmp_path: Path) -> None:
    agent = ProtocolClient(server.url, "pc-during-upload", REGISTRATION_KEY)
    agent.hello()  # registered
    agent.update()
    console, csrf = logged_in(server)
    depot = DirectoryDepot(tmp_path / "depot")  # the server's depot (start_server puts it there)
    answered: list[str] = []
    uploaded: dict[str, httpx.Response] = {}

    def upload() -> None:
        uploaded["answer"] = console.post(
            "/packages/new",
            data={"csrf_token": csrf, "family": "Firefox", "version": "120", "install_procedure": "setup"},
            files={"payload": ("firefox.zip", zip_bytes({"setup.sh": "echo installed\n"}))},
            headers={"accept": "application/json"},
        )
        answered.append("upload")

    # Another process deciding that a payload is unused holds the depot's lock: the upload's use case
    # waits for it, as it would while a large upload of another replica is stored.
    with depot.removing():
        uploading = threading.Thread(target=upload)
        uploading.start()
        wait_until(
            lambda: waits_for_lock(depot.spool_dir / ".lock", server.process.pid),
            message="the upload never waited for the depot's lock",
        )
        try:
            agent.hello()  # on the event loop, the waiting upload would hold this up until the lock is free
        except httpx.ReadTimeout:
            pytest.fail("the check-in was not answered while a console upload waited for the depot")
        answered.append("check-in")
    uploading.join(HTTP_TIMEOUT_S)  # the lock is free: the upload goes on
    console.close()

    assert answered == ["check-in", "upload"]
    answer = uploaded["answer"]
    assert answer.status_code == 200, answer.text
    assert answer.json()["location"] == f"/packages/{answer.json()['id']}"


def test_every_console_post_reads_its_form_async_and_runs_in_the_thread_pool() -> None:
    """FastAPI runs a plain function's handler in its thread pool; a coroutine would run on the loop."""
    app = FastAPI()
    install_console(app)
    posts = [route for route in api_routes(app.routes) if "POST" in route.methods]
    assert len(posts) >= 25
    for route in posts:
        assert not inspect.iscoroutinefunction(route.endpoint), f"{route.path} runs on the event loop"
        if route.path not in PUBLIC_POSTS:
            forms = [d.call for d in route.dependant.dependencies]
            assert checked_form in forms, f"{route.path} does not check its form's CSRF token"
