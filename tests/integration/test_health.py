"""`/healthz` says whether the database answers, and only that: it is public, so why it does not answer
(the driver's text, which may name hosts and users) goes to the server's log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from oco.application import create_app
from tests.conftest import make_runtime


def test_a_database_that_does_not_answer_is_reported_without_the_drivers_words(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_file = tmp_path / "a-directory"
    not_a_file.mkdir()
    rt = make_runtime(f"sqlite:///{not_a_file}", tmp_path)
    try:
        client = TestClient(create_app(rt, run_housekeeping=False))  # no lifespan: nothing migrated
        with caplog.at_level(logging.WARNING, logger="oco.server"):
            response = client.get("/healthz")
    finally:
        rt.close()

    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unavailable"}
    assert "unable to open database file" in caplog.text
