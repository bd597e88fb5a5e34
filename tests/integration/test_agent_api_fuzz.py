"""Hypothesis-generated agent API requests: never a 500, never a changed database."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from oco.application import create_app
from oco.services import computers
from oco.services.runtime import Runtime
from tests.conftest import Clock, make_runtime
from tests.support import copy_sqlite_template

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
methods = st.sampled_from(
    [
        "oco.agent.hello",
        "oco.agent.update",
        "oco.agent.update_job_state",
        "oco.agent.download",
        "oco.other",
        "",
    ]
)
params = st.fixed_dictionaries(
    {},
    optional={
        "hostname": st.one_of(st.just("fuzz-pc"), st.text(max_size=12), json_values),
        "uid": json_values,
        "timestamp": st.one_of(st.floats(), st.integers(), json_values),
        "data": json_values,
        "package-id": json_values,
    },
)
requests = st.fixed_dictionaries(
    {
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2]),
        "method": methods,
        "params": st.one_of(params, json_values),
    },
    optional={"id": json_values},
)


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[tuple[TestClient, Runtime]]:
    workdir = tmp_path_factory.mktemp("fuzz")
    url = copy_sqlite_template(sqlite_template, workdir)
    rt = make_runtime(url, workdir, Clock(), self_registration=True)
    computers.add_computer(rt, "fuzz-pc", "tests")
    with TestClient(create_app(rt, run_housekeeping=False)) as client:
        yield client, rt
    rt.close()


def snapshot(rt: Runtime) -> list[tuple[object, ...]]:
    with rt.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT hostname, agent_key, last_agent_timestamp FROM computer ORDER BY id")
        )
        return [tuple(row) for row in rows] + [tuple(connection.execute(text("SELECT count(*) FROM job")))]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(document=st.one_of(requests, json_values), signature=st.one_of(st.none(), st.text(max_size=64)))
def test_generated_requests_are_refused_cleanly(
    api: tuple[TestClient, Runtime], document: object, signature: str | None
) -> None:
    client, rt = api
    before = snapshot(rt)
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["x-oco-agent-signature"] = signature.encode("ascii", "ignore").decode()
    response = client.post("/api-agent.php", content=json.dumps(document).encode(), headers=headers)
    assert response.status_code in (400, 401), response.text
    if response.status_code == 400:
        assert response.json()["error"]["message"]
    assert snapshot(rt) == before


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_are_a_400(api: tuple[TestClient, Runtime], raw: bytes) -> None:
    client, _ = api
    response = client.post("/api/agent", content=raw, headers={"content-type": "application/json"})
    assert response.status_code in (400, 401)


_clock = iter(range(1_000_000, 10_000_000))


def _signed(client: TestClient, key: str, document: dict[str, object]) -> object:
    body = json.dumps(document).encode()
    signature = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    headers = {"content-type": "application/json", "x-oco-agent-signature": signature}
    return client.post("/api-agent.php", content=body, headers=headers)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    method=st.sampled_from(
        ["oco.agent.hello", "oco.agent.update", "oco.agent.update_job_state", "oco.agent.download"]
    ),
    data=json_values,
    package_id=json_values,
)
def test_signed_requests_with_generated_data_never_fail_the_server(
    api: tuple[TestClient, Runtime], method: str, data: object, package_id: object
) -> None:
    """A registered computer sends generated data to every handler: 200, 400 or 401, never a 500."""
    client, rt = api
    hostname = f"signed-{next(_clock)}"

    def document(name: str, payload: object, **extra: object) -> dict[str, object]:
        params = {"hostname": hostname, "uid": "u", "timestamp": float(next(_clock)), "data": payload}
        return {"jsonrpc": "2.0", "id": 1, "method": name, "params": {**params, **extra}}

    hello = _signed(client, rt.settings.agent_registration_key, document("oco.agent.hello", {}))
    agent_key = hello.json()["result"]["params"]["agent-key"]  # type: ignore[attr-defined]
    response = _signed(client, agent_key, document(method, data, **{"package-id": package_id}))
    assert response.status_code in (200, 400, 401), response.text  # type: ignore[attr-defined]
