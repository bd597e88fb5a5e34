"""`/deployments`, `/uninstall` and `/jobs`: job containers, their jobs, and the preview."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from oco.api.admin.schemas import (
    PREVIEW_LIMIT,
    PREVIEW_MAX,
    Actor,
    ContainerChanges,
    Id,
    JobFilter,
    NewDeployment,
    NewUninstall,
    Page,
    Renew,
    Resume,
    RuntimeDep,
)
from oco.api.auth import allow
from oco.domain.roles import Permission
from oco.services import containers, deployments, jobs, rollouts
from oco.services.views import ContainerPublic, JobRowPublic, PagePublic, PlanPublic

router = APIRouter(dependencies=[allow(Permission.VIEW)], tags=["deployments"])


@router.get("/deployments")
def list_deployments(runtime: RuntimeDep) -> list[ContainerPublic]:
    """Job containers with status and progress, newest first."""
    return containers.list_containers(runtime)


@router.post("/deployments/preview", dependencies=[allow(Permission.DEPLOY)])
def preview_deployment(
    runtime: RuntimeDep,
    body: NewDeployment,
    limit: Annotated[
        int, Query(ge=0, le=PREVIEW_MAX, description="computers whose planned jobs are listed")
    ] = PREVIEW_LIMIT,
) -> PlanPublic:
    """What a deployment would create, nothing written: the summary counts every computer and job (per
    state: incompatible, already installed…); the first `limit` computers are listed with their jobs."""
    return deployments.preview_deployment(runtime, body.request(), limit)


@router.post("/deployments", status_code=201, dependencies=[allow(Permission.DEPLOY)])
def create_deployment(runtime: RuntimeDep, actor: Actor, body: NewDeployment) -> ContainerPublic:
    """Create a job container with its jobs; answers with the container and its counts per state (its
    jobs, a page at a time, from `GET /deployments/{id}/jobs`)."""
    return deployments.create_deployment(runtime, body.request(), actor)


@router.post("/uninstall", status_code=201, dependencies=[allow(Permission.DEPLOY)])
def create_uninstall(runtime: RuntimeDep, actor: Actor, body: NewUninstall) -> ContainerPublic:
    """Uninstall jobs for selected assignments."""
    return deployments.create_uninstall(runtime, body.request(), actor)


@router.get("/deployments/{container_id}")
def show_deployment(runtime: RuntimeDep, container_id: Id) -> ContainerPublic:
    """A job container with its status, progress and counts per state; for a phased rollout, its rules,
    where it stands (halted, with the numbers that caused it) and each phase's counts."""
    return rollouts.container_summary(runtime, container_id)


@router.post("/deployments/{container_id}/halt", dependencies=[allow(Permission.EDIT_CONTAINERS)])
def halt_rollout(runtime: RuntimeDep, actor: Actor, container_id: Id) -> ContainerPublic:
    """Halt a phased rollout by hand: nothing more is handed out until it is resumed."""
    return rollouts.halt(runtime, container_id, actor)


@router.post("/deployments/{container_id}/resume", dependencies=[allow(Permission.EDIT_CONTAINERS)])
def resume_rollout(runtime: RuntimeDep, actor: Actor, container_id: Id, body: Resume) -> ContainerPublic:
    """Resume a halted rollout where it stopped (failures so far no longer count for the halt rule);
    with `reopen`, the failed jobs of the halted phase run again."""
    return rollouts.resume(runtime, container_id, actor, reopen=body.reopen)


@router.post("/deployments/{container_id}/cancel", dependencies=[allow(Permission.EDIT_CONTAINERS)])
def cancel_rollout(runtime: RuntimeDep, actor: Actor, container_id: Id) -> ContainerPublic:
    """Cancel a phased rollout: its waiting jobs expire; jobs already started finish."""
    return rollouts.cancel(runtime, container_id, actor)


@router.get("/deployments/{container_id}/jobs")
def deployment_jobs(
    runtime: RuntimeDep, container_id: Id, page: Page, query: JobFilter
) -> PagePublic[JobRowPublic]:
    """A page of a container's jobs that match the filter, failures first unless sorted otherwise
    (`computer`, `package`, `sequence`, `state`, `return_code`, `finished`; `-` first for descending)."""
    return jobs.search_jobs(runtime, container_id, query, page)


@router.patch("/deployments/{container_id}", dependencies=[allow(Permission.EDIT_CONTAINERS)])
def edit_deployment(
    runtime: RuntimeDep, actor: Actor, container_id: Id, body: ContainerChanges
) -> ContainerPublic:
    """Change a job container's settings (with `dry_run`, answer what it would do and save nothing)."""
    return containers.edit_container(runtime, container_id, body.edit(), actor, dry_run=body.dry_run)


@router.post("/deployments/{container_id}/renew", dependencies=[allow(Permission.EDIT_CONTAINERS)])
def renew_deployment(runtime: RuntimeDep, actor: Actor, container_id: Id, body: Renew) -> ContainerPublic:
    """Run the failed jobs again, in place or in a new container; answers with that container."""
    return containers.renew_failed(runtime, container_id, actor, into_new_container=body.new_container)


@router.delete(
    "/deployments/{container_id}", status_code=204, dependencies=[allow(Permission.EDIT_CONTAINERS)]
)
def delete_deployment(runtime: RuntimeDep, actor: Actor, container_id: Id) -> None:
    """Delete a job container and its jobs."""
    containers.delete_container(runtime, container_id, actor)


@router.delete("/jobs/{job_id}", status_code=204, dependencies=[allow(Permission.EDIT_CONTAINERS)])
def delete_job(runtime: RuntimeDep, actor: Actor, job_id: Id) -> None:
    """Delete one job."""
    jobs.delete_job(runtime, job_id, actor)
