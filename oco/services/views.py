"""Plain-dict views of the stored objects, shared by `--json` output and the admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from oco.db.models import (
    Computer,
    ComputerGroup,
    ComputerPackage,
    Package,
    PackageFamily,
    PackageGroup,
)
from oco.domain.states import PostAction


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def package_view(package: Package) -> dict[str, Any]:
    return {
        "id": package.id,
        "family_id": package.family_id,
        "family": package.family.name,
        "version": package.version,
        "notes": package.notes,
        "install_procedure": package.install_procedure,
        "install_success_codes": package.install_success_codes,
        "install_post_action": PostAction(package.install_post_action).name.lower(),
        "uninstall_procedure": package.uninstall_procedure,
        "uninstall_success_codes": package.uninstall_success_codes,
        "uninstall_post_action": PostAction(package.uninstall_post_action).name.lower(),
        "upgrade_behavior": package.upgrade_behavior,
        "compatible_os": package.compatible_os,
        "compatible_os_version": package.compatible_os_version,
        "compatible_architecture": package.compatible_architecture,
        "payload_sha256": package.payload_sha256,
        "payload_size": package.payload_size,
        "author": package.author,
        "created": iso(package.created),
    }


def family_view(family: PackageFamily) -> dict[str, Any]:
    return {
        "id": family.id,
        "name": family.name,
        "notes": family.notes,
        "versions": [{"id": p.id, "version": p.version} for p in family.packages],
    }


def assignment_view(assignment: ComputerPackage) -> dict[str, Any]:
    package = assignment.package
    return {
        "id": assignment.id,
        "computer_id": assignment.computer_id,
        "computer": assignment.computer.hostname,
        "package_id": package.id,
        "package": package.display_name,
        "installed": iso(assignment.installed),
        "installed_by_job_id": assignment.installed_by_job_id,
    }


def computer_view(computer: Computer, *, detail: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": computer.id,
        "hostname": computer.hostname,
        "uid": computer.uid,
        "os": computer.os,
        "os_version": computer.os_version,
        "architecture": computer.architecture,
        "agent_version": computer.agent_version,
        "remote_address": computer.remote_address,
        "last_seen": iso(computer.last_seen),
        "registered": bool(computer.agent_key),
        "notes": computer.notes,
        "created": iso(computer.created),
    }
    if detail:
        view["kernel_version"] = computer.kernel_version
        view["networks"] = [
            {
                "interface": n.interface,
                "address": n.address,
                "netmask": n.netmask,
                "broadcast": n.broadcast,
                "mac": n.mac,
            }
            for n in computer.networks
        ]
        view["logins"] = computer.logins or []
        view["inventory"] = computer.inventory or {}
        view["inventory_updated"] = iso(computer.inventory_updated)
        view["installed_packages"] = [
            {
                "assignment_id": a.id,
                "package_id": a.package_id,
                "package": a.package.display_name,
                "installed": iso(a.installed),
            }
            for a in sorted(computer.assignments, key=lambda a: a.package.display_name)
        ]
    return view


def computer_group_view(group: ComputerGroup) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "computers": [{"id": m.computer_id, "hostname": m.computer.hostname} for m in group.members],
    }


def package_group_view(group: PackageGroup) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "packages": [
            {"id": m.package_id, "package": m.package.display_name, "sequence": m.sequence}
            for m in group.members
        ],
    }
