"""The admin commands: ids printed, `--json` everywhere, one-line errors with exit status 2."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oco.cli import app


@pytest.fixture
def oco(sqlite_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {"OCO_DATABASE_URL": sqlite_url, "OCO_DEPOT_PATH": str(tmp_path / "depot")}

    def invoke(*args: str, stdin: str | None = None, expect: int = 0) -> str:
        result = runner.invoke(app, list(args), env=env, input=stdin)
        assert result.exit_code == expect, result.output
        return result.output

    return invoke


def test_package_add_prints_the_id_and_list_and_show_find_it(oco, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    payload = tmp_path / "setup.sh"
    payload.write_text("exit 0\n")

    package_id = oco(
        "package",
        "add",
        "--family",
        "7-Zip",
        "--version",
        "23.01",
        "--install",
        "sh setup.sh",
        "--install-codes",
        "0,3010",
        "--install-post-action",
        "restart",
        "--payload",
        str(payload),
    ).strip()

    listed = json.loads(oco("package", "list", "--json"))
    assert [(p["id"], p["family"], p["version"]) for p in listed] == [(int(package_id), "7-Zip", "23.01")]
    shown = json.loads(oco("package", "show", package_id, "--json"))
    assert shown["install_success_codes"] == "0,3010"
    assert shown["install_post_action"] == "restart"
    assert shown["payload_size"] > 0
    assert "23.01" in oco("package", "list")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--install-codes", "0,x"], "'x'"),
        (["--payload", "/nonexistent/setup.exe"], "does not exist"),
    ],
)
def test_bad_package_input_exits_2_with_one_line(oco, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    output = oco("package", "add", "--family", "F", "--version", "1", "--install", "x", *args, expect=2)
    assert message in output
    assert len(output.strip().splitlines()) == 1
    assert json.loads(oco("package", "list", "--json")) == []


def test_a_version_clash_exits_2_and_changes_nothing(oco) -> None:  # type: ignore[no-untyped-def]
    oco("package", "add", "--family", "F", "--version", "1", "--install", "x")
    output = oco("package", "add", "--family", "F", "--version", "1", "--install", "y", expect=2)
    assert "already exists" in output
    assert [p["install_procedure"] for p in json.loads(oco("package", "list", "--json"))] == ["x"]


def test_computers_groups_and_assignments(oco) -> None:  # type: ignore[no-untyped-def]
    pc1 = oco("computer", "add", "pc1.example.org").strip()
    oco("computer", "add", "pc2")
    assert "already exists" in oco("computer", "add", "PC2", expect=2)  # hostnames ignore case
    oco("computer", "add", "pc1", expect=2)
    group = oco("group", "computer", "create", "Lab").strip()
    oco("group", "computer", "add", "Lab", "pc1", "pc2")
    members = json.loads(oco("group", "computer", "show", group, "--json"))["computers"]
    assert [m["hostname"] for m in members] == ["pc1", "pc2"]

    first = oco("package", "add", "--family", "F", "--version", "1", "--install", "x").strip()
    second = oco("package", "add", "--family", "G", "--version", "1", "--install", "y").strip()
    oco("group", "package", "create", "Base")
    oco("group", "package", "add", "Base", second, first)
    listed = json.loads(oco("group", "package", "show", "Base", "--json"))["packages"]
    assert [p["id"] for p in listed] == [int(second), int(first)]
    oco("group", "package", "order", "Base", first, second)
    listed = json.loads(oco("group", "package", "show", "Base", "--json"))["packages"]
    assert [p["id"] for p in listed] == [int(first), int(second)]
    assert "each of its packages once" in oco("group", "package", "order", "Base", first, expect=2)

    oco("assignment", "add", "--computer", "pc1", "--package", first)
    shown = json.loads(oco("computer", "show", pc1, "--json"))
    assert [p["package"] for p in shown["installed_packages"]] == ["F 1"]
    oco("package", "delete", first, expect=2)
    oco("assignment", "remove", "--computer", "pc1", "--package", first)
    oco("package", "delete", first)
    assert json.loads(oco("computer", "show", "pc1", "--json"))["installed_packages"] == []


def test_user_add_reads_the_password_from_stdin(oco) -> None:  # type: ignore[no-untyped-def]
    assert oco("user", "add", "alice", "--password-stdin", stdin="correct horse\n").strip().isdigit()
    assert "at least 8" in oco("user", "add", "bob", "--password-stdin", stdin="short\n", expect=2)
    assert "alice" in oco("user", "list")
    assert "exist already" in oco("user", "ensure-admin")


def test_ensure_admin_creates_the_first_user_once(oco) -> None:  # type: ignore[no-untyped-def]
    assert "Created the first console user: 'admin'" in oco("user", "ensure-admin")
    assert "exist already" in oco("user", "ensure-admin")


def test_a_zip_payload_round_trips_through_the_cli(oco, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    archive_path = tmp_path / "p.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr("a.txt", "a")
    package_id = oco(
        "package", "add", "--family", "Z", "--version", "1", "--install", "x", "--payload", str(archive_path)
    ).strip()
    assert (
        json.loads(oco("package", "show", package_id, "--json"))["payload_size"]
        == archive_path.stat().st_size
    )


def test_deploy_dry_run_preview_then_create_show_edit_renew_delete(oco) -> None:  # type: ignore[no-untyped-def]
    oco("computer", "add", "pc1")
    oco("computer", "add", "pc2")
    v1 = oco(
        "package", "add", "--family", "Firefox", "--version", "1", "--install", "i1", "--uninstall", "u1"
    ).strip()
    v2 = oco(
        "package", "add", "--family", "Firefox", "--version", "2", "--install", "i2", "--uninstall", "u2"
    ).strip()
    oco("assignment", "add", "--computer", "pc1", "--package", v1)

    preview = json.loads(
        oco(
            "deploy",
            "--name",
            "v2",
            "--computer",
            "pc1",
            "--computer",
            "pc2",
            "--package",
            v2,
            "--dry-run",
            "--json",
        )
    )
    assert [(j["action"], j["package"], j["reason"]) for j in preview["computers"][0]["jobs"]] == [
        ("uninstall", "Firefox 1", "uninstall of Firefox 1 first"),
        ("install", "Firefox 2", ""),
    ]
    assert "uninstall of Firefox 1 first" in oco(
        "deploy", "--name", "v2", "--computer", "pc1", "--package", v2, "--dry-run"
    )
    assert json.loads(oco("container", "list", "--json")) == []

    container = oco(
        "deploy",
        "--name",
        "v2",
        "--computer",
        "pc1",
        "--computer",
        "pc2",
        "--package",
        v2,
        "--priority",
        "5",
        "--ip-ranges",
        "10.0.0.0/8, !10.1.0.0/16",
        "--sequence-mode",
        "abort",
    ).strip()
    shown = json.loads(oco("container", "show", container, "--json"))
    assert (shown["priority"], shown["sequence_mode"], shown["agent_ip_ranges"]) == (
        5,
        "abort",
        "10.0.0.0/8,!10.1.0.0/16",
    )
    assert [(j["computer"], j["action"], j["state"]) for j in shown["jobs"]] == [
        ("pc1", "uninstall", "waiting"),
        ("pc1", "install", "waiting"),
        ("pc2", "install", "waiting"),
    ]
    assert shown["status"] == "in-progress"
    assert "pc1" in oco("container", "show", container)

    oco("container", "edit", container, "--disable", "--priority", "-3", "--name", "renamed")
    listed = json.loads(oco("container", "list", "--json"))
    assert (listed[0]["name"], listed[0]["enabled"], listed[0]["priority"]) == ("renamed", False, -3)
    assert "no failed jobs" in oco("container", "renew", container, expect=2)
    oco("container", "delete", container)
    assert json.loads(oco("container", "list", "--json")) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ip-ranges", "10.0.0.0/33"], "prefix length must be 0..32"),
        (["--ip-ranges", "banana"], "'banana' is not an IPv4 or IPv6 address"),
        (["--priority", "500"], "priority 500 must be between -100 and 100"),
        (["--start", "tomorrow"], "not an ISO 8601"),
        (["--start", "2030-01-02T00:00", "--end", "2030-01-01T00:00"], "must be after start"),
        (["--computer", "nobody"], "computer 'nobody' does not exist"),
    ],
)
def test_bad_deployments_exit_2_with_a_clear_message(oco, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    oco("computer", "add", "pc1")
    package = oco("package", "add", "--family", "F", "--version", "1", "--install", "x").strip()
    output = oco("deploy", "--name", "n", "--computer", "pc1", "--package", package, *args, expect=2)
    assert message in output
    assert json.loads(oco("container", "list", "--json")) == []


def test_uninstall_and_housekeeping_commands(oco) -> None:  # type: ignore[no-untyped-def]
    oco("computer", "add", "pc1")
    package = oco(
        "package", "add", "--family", "F", "--version", "1", "--install", "x", "--uninstall", "y"
    ).strip()
    oco("assignment", "add", "--computer", "pc1", "--package", package)
    container = oco("uninstall", "--computer", "pc1", "--package", package).strip()
    shown = json.loads(oco("container", "show", container, "--json"))
    assert shown["name"] == "Uninstall F"
    assert [(j["action"], j["package"]) for j in shown["jobs"]] == [("uninstall", "F 1")]
    output = oco("housekeeping", "--once")
    assert "expire-jobs: 0" in output and "purge-containers: 0" in output


def test_uninstall_takes_several_computers_and_packages(oco) -> None:  # type: ignore[no-untyped-def]
    for hostname in ("pc1", "pc2", "pc3"):
        oco("computer", "add", hostname)
    first = oco(
        "package", "add", "--family", "A", "--version", "1", "--install", "x", "--uninstall", "y"
    ).strip()
    second = oco(
        "package", "add", "--family", "B", "--version", "1", "--install", "x", "--uninstall", "y"
    ).strip()
    oco("assignment", "add", "--computer", "pc1", "--package", first)
    oco("assignment", "add", "--computer", "pc1", "--package", second)
    oco("assignment", "add", "--computer", "pc2", "--package", second)
    container = oco(
        "uninstall",
        "--computer",
        "pc1",
        "--computer",
        "pc2",
        "--package",
        first,
        "--package",
        second,
        "--priority",
        "5",
        "--ip-ranges",
        "10.0.0.0/8",
        "--restart-timeout",
        "-1",
    ).strip()
    shown = json.loads(oco("container", "show", container, "--json"))
    assert (shown["priority"], shown["agent_ip_ranges"], shown["restart_timeout"]) == (5, "10.0.0.0/8", -1)
    assert [(j["computer"], j["package"]) for j in shown["jobs"]] == [
        ("pc1", "A 1"),
        ("pc1", "B 1"),
        ("pc2", "B 1"),
    ]
    # A computer with none of the packages, or a package none of them has, is named and nothing made.
    before = len(json.loads(oco("container", "list", "--json")))
    refused = oco("uninstall", "--computer", "pc1", "--computer", "pc3", "--package", second, expect=2)
    assert "pc3 has none of the packages to uninstall" in refused
    refused = oco("uninstall", "--computer", "pc2", "--package", first, expect=2)
    assert "A 1 is not assigned to pc2" in refused
    assert len(json.loads(oco("container", "list", "--json"))) == before


def test_user_and_token_listings_take_json(oco) -> None:  # type: ignore[no-untyped-def]
    oco("user", "add", "carol", "--password-stdin", stdin="a long password\n")
    token = oco("token", "create", "--name", "ci", "--user", "carol").strip()
    assert token.startswith("oco_")
    assert [u["username"] for u in json.loads(oco("user", "list", "--json"))] == ["carol"]
    listed = json.loads(oco("token", "list", "--json"))
    assert [(t["name"], t["user"], t["revoked"]) for t in listed] == [("ci", "carol", None)]
    assert token not in oco("token", "list", "--json")


def test_computers_join_a_group_from_a_file_or_a_filter(oco, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for i in range(6):
        oco("computer", "add", f"lab-{i}")
    oco("computer", "add", "office-1")
    oco("group", "computer", "create", "Lab")
    listing = tmp_path / "lab.txt"
    listing.write_text("# the first three\nlab-0\n\nlab-1  # by the door\n3\n")  # 3: the id of lab-2

    assert oco("group", "computer", "add", "Lab", "--from-file", str(listing)).strip() == (
        "added 3 computer(s); Lab has 3"
    )
    assert oco("group", "computer", "add", "Lab", "lab-0", "--from-file", "-", stdin="lab-3\n").strip() == (
        "added 1 computer(s); Lab has 4"  # lab-0 was in it already
    )
    added = oco("group", "computer", "add", "Lab", "--all-matching", "--search", "lab")
    assert added.strip() == "added 2 computer(s); Lab has 6"
    lab = json.loads(oco("group", "computer", "show", "Lab", "--json"))
    assert sorted(c["hostname"] for c in lab["computers"]) == [f"lab-{i}" for i in range(6)]
    listed = json.loads(
        oco("computer", "list", "--json", "--in-group", str(lab["id"]), "--presence", "never-seen")
    )
    assert [c["hostname"] for c in listed] == [f"lab-{i}" for i in range(6)]

    removed = oco("group", "computer", "remove", "Lab", "--all-matching", "--search", "lab-5")
    assert removed.strip() == "removed 1 computer(s); Lab has 5"
    for args, message in (
        (("add", "Lab"), "name computers"),
        (("add", "Lab", "--search", "lab"), "only with --all-matching"),
        (("add", "Lab", "--from-file", str(tmp_path / "missing.txt")), "cannot read"),
        (("add", "Lab", "nobody"), "computer 'nobody' does not exist"),
        (("add", "Nowhere", "lab-0"), "does not exist"),
    ):
        assert message in oco("group", "computer", *args, expect=2)
    assert len(json.loads(oco("group", "computer", "show", "Lab", "--json"))["computers"]) == 5


def test_deploy_can_leave_other_versions_installed(oco) -> None:  # type: ignore[no-untyped-def]
    old = oco("package", "add", "--family", "Editor", "--version", "1", "--install", "i", "--uninstall", "u")
    new = oco("package", "add", "--family", "Editor", "--version", "2", "--install", "i", "--uninstall", "u")
    computer = oco("computer", "add", "pc1").strip()
    oco("assignment", "add", "--computer", computer, "--package", old.strip())
    base = [
        "deploy",
        "--name",
        "Upgrade",
        "--computer",
        "pc1",
        "--package",
        new.strip(),
        "--dry-run",
        "--json",
    ]
    default = json.loads(oco(*base))["computers"][0]["jobs"]
    assert [(j["action"], j["package"]) for j in default] == [
        ("uninstall", "Editor 1"),
        ("install", "Editor 2"),
    ]
    kept = json.loads(oco(*base, "--no-auto-uninstall"))["computers"][0]["jobs"]
    assert [(j["action"], j["package"]) for j in kept] == [("install", "Editor 2")]


def test_times_are_read_and_shown_in_the_configured_zone(sqlite_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {
        "OCO_DATABASE_URL": sqlite_url,
        "OCO_DEPOT_PATH": str(tmp_path / "depot"),
        "OCO_TIME_ZONE": "Europe/Berlin",
    }

    def oco(*args: str, expect: int = 0) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == expect, result.output
        return result.output

    oco("computer", "add", "pc1")
    package = oco("package", "add", "--family", "Tool", "--version", "1", "--install", "i").strip()
    base = ["deploy", "--name", "Night", "--computer", "pc1", "--package", package]
    container = oco(*base, "--start", "2026-12-01T23:00", "--end", "2026-12-02T06:00").strip()
    shown = json.loads(oco("container", "show", container, "--json"))
    assert (shown["start"], shown["end"]) == ("2026-12-01T23:00:00+01:00", "2026-12-02T06:00:00+01:00")
    assert "2026-12-01T23:00:00+01:00" in oco("container", "list")  # to the second, with the offset
    refused = oco(*base, "--start", "2026-12-01T23:00", "--end", "2026-12-01T20:00", expect=2)
    assert "end 2026-12-01 20:00 CET must be after start 2026-12-01 23:00 CET" in refused


def test_users_get_roles_are_disabled_enabled_and_removed(oco) -> None:  # type: ignore[no-untyped-def]
    oco("user", "add", "root", "--password-stdin", stdin="a long password\n")
    oco("user", "add", "ops", "--role", "operator", "--password-stdin", stdin="a long password\n")
    refused = oco(
        "user", "add", "x", "--role", "boss", "--password-stdin", stdin="a long password\n", expect=2
    )
    assert "role 'boss' must be one of administrator," in refused  # the rest wraps in the error box
    assert [(u["username"], u["role"]) for u in json.loads(oco("user", "list", "--json"))] == [
        ("ops", "operator"),
        ("root", "administrator"),
    ]
    assert "ops is now read-only" in oco("user", "role", "ops", "read-only")
    assert "is the last active administrator" in oco("user", "role", "root", "operator", expect=2)
    assert "is the last active administrator" in oco("user", "disable", "root", expect=2)
    assert "is the last active administrator" in oco("user", "remove", "root", expect=2)
    assert "sessions ended, API tokens revoked" in oco("user", "disable", "ops")
    assert [u["enabled"] for u in json.loads(oco("user", "list", "--json"))] == [False, True]
    assert "enabled ops" in oco("user", "enable", "ops")
    assert "removed ops" in oco("user", "remove", "ops")
    assert "user 'ops' does not exist" in oco("user", "remove", "ops", expect=2)


def test_the_roles_table_is_the_rule(oco) -> None:  # type: ignore[no-untyped-def]
    lines = oco("user", "roles").splitlines()
    assert lines[0].split()[-3:] == ["ADMINISTRATOR", "OPERATOR", "READ-ONLY"]
    assert len(lines) == 1 + 9  # the header, one line per permission
    delete = next(line for line in lines if line.startswith("delete packages"))
    assert delete.split()[-3:] == ["yes", "no", "no"]
    view = next(line for line in lines if line.startswith("see computers"))
    assert view.split()[-3:] == ["yes", "yes", "yes"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--database", "sqlite:///oco.db"], "MariaDB or MySQL"),
        (["--database", "not a url"], "not valid"),
        (["--database", "mysql+pymysql://oco@127.0.0.1:1/oco"], "reading the OCO-Server database failed"),
        (["--database", "mysql+pymysql://oco@127.0.0.1/oco", "--payloads", "/nonexistent"], "does not exist"),
        (
            ["--database", "mysql+pymysql://oco@127.0.0.1/oco", "--time-zone", "Mars/Olympus"],
            "unknown time zone",
        ),
    ],
)
def test_import_refuses_bad_input_with_one_line_and_changes_nothing(
    oco, args: list[str], message: str
) -> None:  # type: ignore[no-untyped-def]
    output = oco("import", "oco-server", *args, expect=2)
    assert message in output
    assert len(output.strip().splitlines()) == 1
    assert json.loads(oco("computer", "list", "--json")) == []


def test_a_bad_setting_is_one_line_and_exit_status_2(sqlite_url: str, tmp_path: Path) -> None:
    env = {
        "OCO_DATABASE_URL": sqlite_url,
        "OCO_DEPOT_PATH": str(tmp_path / "depot"),
        "OCO_HOUSEKEEPING_INTERVAL_SECONDS": "every minute",
    }
    result = CliRunner().invoke(app, ["computer", "list"], env=env)
    assert result.exit_code == 2
    assert "housekeeping_interval_seconds" in result.output
    assert "Traceback" not in result.output


def test_deploy_with_max_downloads_previews_it_and_edit_changes_it(oco, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    payload = tmp_path / "setup.sh"
    payload.write_text("exit 0\n")
    oco("computer", "add", "slot-pc1")
    oco("computer", "add", "slot-pc2")
    package_id = oco(
        "package", "add", "--family", "Slots", "--version", "1", "--install", "sh setup.sh",
        "--payload", str(payload),
    ).strip()  # fmt: skip
    deploy = ["deploy", "--name", "Slots", "--computer", "slot-pc1", "--computer", "slot-pc2"]
    deploy += ["--package", package_id, "--max-downloads", "1"]
    preview = oco(*deploy, "--dry-run")
    assert "downloads: At most 1 of the 2 computers with a payload to download fetch it at once" in preview
    assert "maximum downloads must be" in oco(*deploy[:-1], "-4", expect=2)
    container_id = oco(*deploy).strip()
    listed = json.loads(oco("container", "list", "--json"))
    assert [c["max_downloads"] for c in listed if c["id"] == int(container_id)] == [1]
    oco("container", "edit", container_id, "--max-downloads", "0")
    listed = json.loads(oco("container", "list", "--json"))
    assert [c["max_downloads"] for c in listed if c["id"] == int(container_id)] == [None]
