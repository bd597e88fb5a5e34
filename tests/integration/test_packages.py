"""Packages: create with payload, duplicates refused, delete frees the depot — on every database."""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path

import pytest

from oco.depot import Depot, StoredPayload
from oco.domain.states import PostAction, UpgradeBehavior
from oco.errors import Conflict, InvalidInput, NotFound
from oco.services import assignments, computers, packages
from oco.services.runtime import Runtime


def spec(version: str = "1.0", **changes: object) -> packages.PackageSpec:
    values: dict[str, object] = {
        "family": "Firefox",
        "version": version,
        "install_procedure": "sh install.sh",
        "uninstall_procedure": "sh uninstall.sh",
    }
    values.update(changes)
    return packages.PackageSpec(**values)  # type: ignore[arg-type]


def test_a_package_with_a_plain_file_payload_is_stored_zipped(rt: Runtime, tmp_path: Path) -> None:
    script = tmp_path / "install.sh"
    script.write_text("echo installed\n")
    script.chmod(0o755)

    created = packages.create_package(
        rt, spec(install_success_codes="0, 3010"), lambda depot: depot.put_file(script), "tester"
    )

    package = packages.package_detail(rt, created.id)
    assert package.family == "Firefox"
    assert package.install_success_codes == "0,3010"
    assert package.payload_size == rt.depot.size(package.payload_sha256 or "")
    digest = package.payload_sha256
    with zipfile.ZipFile(rt.depot.path(digest or "")) as archive:
        assert archive.read("install.sh") == b"echo installed\n"
        assert archive.getinfo("install.sh").external_attr >> 16 & 0o111


def test_a_zip_payload_is_stored_as_it_is(rt: Runtime, tmp_path: Path) -> None:
    archive_path = tmp_path / "payload.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr("setup.sh", "exit 0\n")

    digest = packages.create_package(
        rt, spec(), lambda depot: depot.put_file(archive_path), "tester"
    ).payload_sha256

    assert rt.depot.path(digest or "").read_bytes() == archive_path.read_bytes()


def test_a_directory_payload_is_zipped_with_its_tree(rt: Runtime, tmp_path: Path) -> None:
    (tmp_path / "payload" / "bin").mkdir(parents=True)
    (tmp_path / "payload" / "bin" / "tool").write_text("#!/bin/sh\n")

    created = packages.create_package(
        rt, spec(), lambda depot: depot.put_file(tmp_path / "payload"), "tester"
    )

    digest = packages.package_detail(rt, created.id).payload_sha256
    with zipfile.ZipFile(rt.depot.path(digest or "")) as archive:
        assert "bin/tool" in archive.namelist()


def test_the_same_version_twice_is_refused_and_leaves_no_payload(rt: Runtime, tmp_path: Path) -> None:
    packages.create_package(rt, spec(), None, "tester")
    other = tmp_path / "other.bin"
    other.write_bytes(b"other payload")

    with pytest.raises(Conflict, match=r"'Firefox' version '1\.0' already exists"):
        packages.create_package(rt, spec(), lambda depot: depot.put_file(other), "tester")

    assert not any(p.is_file() for p in rt.depot.root.rglob("*") if not p.name.startswith("."))
    assert len(packages.list_packages(rt)) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"install_success_codes": "0,x"}, "'x'"),
        ({"uninstall_success_codes": "1;2"}, "1;2"),
        ({"family": "  "}, "family name must not be empty"),
        ({"version": ""}, "version must not be empty"),
        ({"install_procedure": " "}, "install procedure must not be empty"),
    ],
)
def test_bad_package_input_is_refused_with_a_clear_message(
    rt: Runtime, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        packages.create_package(rt, spec(**changes), None, "tester")
    assert packages.list_packages(rt) == []
    assert packages.list_families(rt) == []


def test_package_fields_are_kept(rt: Runtime) -> None:
    created = packages.create_package(
        rt,
        spec(
            install_post_action=PostAction.RESTART,
            uninstall_post_action=PostAction.SHUTDOWN,
            upgrade_behavior=UpgradeBehavior.INSTALLER_REMOVES,
            compatible_os="Linux",
            compatible_os_version="12",
            compatible_architecture="x86_64",
            uninstall_success_codes="",
        ),
        None,
        "tester",
    )
    package = packages.package_detail(rt, created.id)
    assert package.install_post_action is PostAction.RESTART
    assert package.uninstall_post_action is PostAction.SHUTDOWN
    assert package.upgrade_behavior is UpgradeBehavior.INSTALLER_REMOVES
    assert (package.compatible_os, package.compatible_os_version) == ("Linux", "12")
    assert package.compatible_architecture == "x86_64"
    assert package.uninstall_success_codes == ""
    assert package.author == "tester"
    assert package.model_dump(mode="json")["install_post_action"] == "restart"


def test_an_installed_package_cannot_be_deleted_until_its_assignments_are_gone(
    rt: Runtime, tmp_path: Path
) -> None:
    payload = tmp_path / "setup.sh"
    payload.write_text("exit 0\n")
    package = packages.create_package(rt, spec(), lambda depot: depot.put_file(payload), "tester")
    computers.add_computer(rt, "pc1", "tester")
    assignment = assignments.add_assignment(rt, "pc1", package.id, "tester")
    digest = package.payload_sha256 or ""
    assert (assignment.computer, assignment.package) == ("pc1", "Firefox 1.0")
    with pytest.raises(Conflict, match="already assigned"):
        assignments.add_assignment(rt, "pc1", package.id, "tester")

    with pytest.raises(Conflict, match="still assigned to 1 computer"):
        packages.remove_package(rt, package.id, "tester")
    assert rt.depot.exists(digest)

    assignments.remove_assignments(rt, [assignment.id], "tester")
    packages.remove_package(rt, package.id, "tester")

    assert not rt.depot.exists(digest)
    with pytest.raises(NotFound):
        packages.package_detail(rt, package.id)
    assert packages.list_families(rt) == []


def test_a_payload_shared_by_two_versions_stays_until_both_are_deleted(rt: Runtime, tmp_path: Path) -> None:
    payload = tmp_path / "same.sh"
    payload.write_text("exit 0\n")
    first = packages.create_package(rt, spec("1.0"), lambda depot: depot.put_file(payload), "tester")
    second = packages.create_package(rt, spec("1.1"), lambda depot: depot.put_file(payload), "tester")
    digest = first.payload_sha256 or ""
    assert second.payload_sha256 == digest

    packages.remove_package(rt, first.id, "tester")
    assert rt.depot.exists(digest)
    packages.remove_package(rt, second.id, "tester")
    assert not rt.depot.exists(digest)


def test_a_payload_uploaded_again_while_its_last_package_is_deleted_is_kept(
    rt: Runtime, tmp_path: Path
) -> None:
    payload = tmp_path / "same.sh"
    payload.write_text("exit 0\n")
    old = packages.create_package(rt, spec("1.0"), lambda depot: depot.put_file(payload), "tester").id
    stored, go_on = threading.Event(), threading.Event()

    def upload_again(depot: Depot) -> StoredPayload:
        result = depot.put_file(payload)  # the file is there: the upload reuses it...
        stored.set()
        assert go_on.wait(10)  # ...and its package is not committed yet
        return result

    upload = threading.Thread(
        target=packages.create_package, args=(rt, spec("1.1"), upload_again, "tester"), daemon=True
    )
    upload.start()
    assert stored.wait(10)
    removal = threading.Thread(target=packages.remove_package, args=(rt, old, "tester"), daemon=True)
    removal.start()
    removal.join(0.3)
    assert removal.is_alive(), "the payload's deletion must wait for the upload's package"

    go_on.set()
    upload.join(10)
    removal.join(10)

    [kept] = packages.list_packages(rt)
    assert kept.version == "1.1" and kept.payload_sha256 is not None
    assert rt.depot.exists(kept.payload_sha256)
