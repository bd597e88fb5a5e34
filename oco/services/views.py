"""Plain-dict views of the stored objects, shared by `--json` output and the admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from oco.config import Settings
from oco.db.models import (
    Computer,
    ComputerGroup,
    ComputerPackage,
    Job,
    Package,
    PackageFamily,
    PackageGroup,
)
from oco.domain.planning import Plan, effective_post_action
from oco.domain.states import JobState, PostAction, SequenceMode
from oco.services.deployments import ContainerSummary


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


def container_view(summary: ContainerSummary, settings: Settings) -> dict[str, Any]:
    container = summary.container
    return {
        "id": container.id,
        "name": container.name,
        "description": container.description,
        "notes": container.notes,
        "author": container.author,
        "created": iso(container.created),
        "enabled": container.enabled,
        "start": iso(container.start_time),
        "end": iso(container.end_time),
        "wol": container.wol,
        "shutdown_waked": container.shutdown_waked,
        "wol_sent": iso(container.wol_sent),
        "priority": container.priority,
        "restart_timeout": container.restart_timeout,
        "sequence_mode": "abort" if container.sequence_mode == SequenceMode.ABORT_AFTER_FAILED else "ignore",
        "agent_ip_ranges": container.agent_ip_ranges,
        "status": str(summary.status),
        "progress": summary.progress,
        "job_counts": {JobState(state).name.lower(): count for state, count in summary.counts.items()},
        "last_finished": iso(summary.last_finished),
    }


def job_view(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "container_id": job.container_id,
        "computer_id": job.computer_id,
        "computer": job.computer.hostname,
        "package_id": job.package_id,
        "package": job.package_name,
        "action": job.action,
        "sequence": job.sequence,
        "state": JobState(job.state).name.lower(),
        "state_code": job.state,
        "return_code": job.return_code,
        "message": job.message,
        "download_progress": job.download_progress,
        "post_action": PostAction(
            effective_post_action(PostAction(job.post_action), job.wol_shutdown)
        ).name.lower(),
        "created": iso(job.created),
        "last_update": iso(job.last_update),
        "download_started": iso(job.download_started),
        "execution_started": iso(job.execution_started),
        "execution_finished": iso(job.execution_finished),
    }


def plan_view(plan: Plan) -> dict[str, Any]:
    return {
        "computers": [
            {
                "computer_id": computer.computer_id,
                "hostname": computer.hostname,
                "wake": computer.wake,
                "notes": list(computer.notes),
                "jobs": [
                    {
                        "sequence": job.sequence,
                        "package_id": job.package_id,
                        "package": job.package_name,
                        "action": str(job.action),
                        "state": job.state.name.lower(),
                        "reason": job.reason,
                        "post_action": effective_post_action(job.post_action, job.wol_shutdown).name.lower(),
                    }
                    for job in computer.jobs
                ],
            }
            for computer in plan.computers
        ],
        "summary": {
            "jobs": len(plan.jobs),
            "skipped": len(plan.skipped()),
            "woken": [computer.hostname for computer in plan.woken],
            "states": {state.name.lower(): count for state, count in plan.counts().items()},
        },
    }
