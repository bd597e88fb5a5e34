"""`oco deploy --retries/--retry-delay` and `oco container edit` of retries, phases and windows."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_cli import oco  # noqa: F401


def _container(oco, *args: str) -> str:  # type: ignore[no-untyped-def]  # noqa: F811
    for n in range(4):
        oco("computer", "add", f"pc{n}")
    package = oco("package", "add", "--family", "F", "--version", "1", "--install", "x").strip()
    targets = [arg for n in range(4) for arg in ("--computer", f"pc{n}")]
    return str(oco("deploy", "--name", "n", "--package", package, *targets, *args).strip())


def test_deploy_with_retries_previews_and_stores_them(oco) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    oco("computer", "add", "pc1")
    package = oco("package", "add", "--family", "F", "--version", "1", "--install", "x").strip()
    args = ["deploy", "--name", "n", "--computer", "pc1", "--package", package, "--retries", "3"]
    preview = oco(*args, "--retry-delay", "10m", "--dry-run")
    assert "retries: a job its agent could not run (-9999) is retried up to 3 times, 10m after" in preview
    container = oco(*args, "--retry-delay", "10m").strip()
    shown = json.loads(oco("container", "show", container, "--json"))
    assert (shown["retries"], shown["retry_delay"], shown["retry_delay_seconds"]) == (3, "10m", 600)
    assert shown["jobs"][0]["attempt"] == 1 and shown["jobs"][0]["attempts"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--retries", "11"], "retries must be 0 to 10, not 11"),
        (["--retries", "1", "--retry-delay", "soon"], "duration 'soon' must be like 90s"),
        (["--retries", "1", "--retry-delay", "8d"], "retry delay must be 0 to 7 days"),
    ],
)
def test_bad_retries_exit_2_with_a_clear_message(oco, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    oco("computer", "add", "pc1")
    package = oco("package", "add", "--family", "F", "--version", "1", "--install", "x").strip()
    output = oco("deploy", "--name", "n", "--computer", "pc1", "--package", package, *args, expect=2)
    assert message in output
    assert json.loads(oco("container", "list", "--json")) == []


def test_container_edit_changes_retries_phases_and_windows(oco) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    container = _container(oco, "--phases", "1,all")
    previewed = oco("container", "edit", container, "--phases", "50%", "--dry-run")
    assert "would update job container" in previewed and "phases: 50%, now in phase 1" in previewed
    assert json.loads(oco("container", "rollout", container, "--json"))["rollout"]["phases"] == "1,100%"
    printed = oco(
        "container", "edit", container, "--retries", "2", "--retry-delay", "5m",
        "--phases", "50%", "--halt-failure-rate", "25", "--window", "Mon-Fri 18:00-06:00",
        "--window-zone", "server",
    )  # fmt: skip
    assert "retries: 2, 5m apart" in printed
    assert "windows: Mon-Fri 18:00-06:00 (server time)" in printed
    assert "phases: 50%, now in phase 1" in printed and "phase 2: waiting, 2 computer(s)" in printed
    shown = json.loads(oco("container", "rollout", container, "--json"))
    assert shown["rollout"]["phases"] == "50%" and shown["rollout"]["halt_failure_rate"] == 25
    assert (shown["retries"], shown["windows"], shown["window_zone"]) == (
        2,
        ["Mon-Fri 18:00-06:00"],
        "server",
    )

    oco("container", "edit", container, "--window", "none", "--halt-failure-rate", "none")
    shown = json.loads(oco("container", "rollout", container, "--json"))
    assert shown["windows"] == [] and shown["rollout"]["halt_failure_rate"] is None
    assert "'Mon 25:00-26:00'" in oco("container", "edit", container, "--window", "Mon 25:00-26:00", expect=2)
    assert "phase success must be 0 to 100" in oco(
        "container", "edit", container, "--phase-success", "120", expect=2
    )
    assert "must be a percentage" in oco(
        "container", "edit", container, "--halt-failure-rate", "lots", expect=2
    )
