"""Importing job containers and their jobs (pending ones stay pending), with their Wake-on-LAN state."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from oco.db.models import Job, JobContainer, Package, PackageFamily, WolTarget
from oco.domain import ocoimport as rules
from oco.domain.ocoimport import ImportKind
from oco.domain.states import PENDING_STATES, JobAction, JobState, PostAction
from oco.errors import OcoError
from oco.services.listing import chunks
from oco.services.ocoimport.context import FLUSH_EVERY, ImportContext, mapping_of, pairs_of, text_of
from oco.services.ocoimport.source import Row


@dataclass(frozen=True, slots=True)
class _PackageInfo:
    name: str
    install_post_action: PostAction
    uninstall_post_action: PostAction


class DeploymentImport(ImportContext):
    """Job containers and jobs, new and caught up."""

    def containers(self) -> None:
        kind = ImportKind.JOB_CONTAINER
        mapped = mapping_of(self.session, kind)
        timeouts: dict[int, list[int | None]] = defaultdict(list)
        for row in self.source.rows(self.source.job_table, ["job_container_id", "post_action_timeout"]):
            timeouts[row["job_container_id"]].append(row["post_action_timeout"])
        rows = list(self.source.rows("job_container", _CONTAINER_COLUMNS))
        new: list[tuple[int, JobContainer]] = []
        for done, row in enumerate(rows, start=1):
            if row["id"] in mapped:
                self.report.kind(kind).already_imported += 1
                continue
            wol = rules.container_wol(row["wol_sent"])
            start = self._utc(row["start_time"]) or self.now
            container = JobContainer(
                name=text_of(row["name"]) or f"OCO job container {row['id']}",
                description=text_of(row["notes"], None),
                author=self._author(row),
                created=self._utc(row["created"]) or self.now,
                enabled=row["enabled"] is None or bool(row["enabled"]),
                start_time=start,
                end_time=self._utc(row["end_time"]),
                wol=wol.wol,
                shutdown_waked=wol.wol and bool(row["shutdown_waked_after_completion"]),
                wol_sent=start if wol.sent else None,
                priority=rules.priority(row["priority"]),
                restart_timeout=rules.restart_timeout(timeouts.get(row["id"], [])),
                sequence_mode=int(rules.sequence_mode(row["sequence_mode"])),
                agent_ip_ranges=text_of(row["agent_ip_ranges"], None).strip(),
            )
            if text_of(row["time_frames"], None).strip():
                self.report.notes.append(
                    f"job container {container.name!r} has time frames ({text_of(row['time_frames'])}), "
                    "which we do not have: its jobs run at any time between its start and end"
                )
            self.session.add(container)
            new.append((row["id"], container))
            self._tick(kind, done, len(rows))
        self.session.flush()
        self._remember(kind, [(source_id, c.id) for source_id, c in new])

    def jobs(self) -> None:
        kind = ImportKind.JOB
        mapped = mapping_of(self.session, kind)
        containers = mapping_of(self.session, ImportKind.JOB_CONTAINER)
        computers = mapping_of(self.session, ImportKind.COMPUTER)
        packages = mapping_of(self.session, ImportKind.PACKAGE)
        infos = self._package_infos(packages.values())
        by_id = {
            c.id: c
            for chunk in chunks(list(containers.values()))
            for c in self.session.scalars(select(JobContainer).where(JobContainer.id.in_(chunk)))
        }
        wol_targets: dict[tuple[int, int], datetime | None] = {}
        total = self.source.count(self.source.job_table)
        pending: list[tuple[int, dict[str, Any]]] = []
        known: list[tuple[int, Row]] = []
        for done, row in enumerate(
            self.source.rows(self.source.job_table, _JOB_COLUMNS, ("procedure", "package_procedure")),
            start=1,
        ):
            label = f"job {row['id']} of container {row['job_container_id']}"
            if row["id"] in mapped:
                self.report.kind(kind).already_imported += 1
                known.append((mapped[row["id"]], row))
            elif row["job_container_id"] not in containers:
                self.report.skip(kind, row["id"], label, "its job container was not imported")
            elif row["computer_id"] not in computers:
                self.report.skip(kind, row["id"], label, "its computer was not imported")
            elif row["package_id"] not in packages:
                self.report.skip(kind, row["id"], label, "its package was not imported")
            else:
                container = by_id[containers[row["job_container_id"]]]
                package_id = packages[row["package_id"]]
                job = self._job(row, container, computers[row["computer_id"]], package_id, infos[package_id])
                if job is not None:
                    pending.append((row["id"], job))
                    self._wol_target(wol_targets, container, job, row["wol_shutdown_set"])
            if len(pending) >= FLUSH_EVERY:
                self._flush_jobs(pending)
            if len(known) >= FLUSH_EVERY:
                self._catch_up_jobs(known)
            self._tick(kind, done, total)
        self._flush_jobs(pending)
        self._catch_up_jobs(known)
        self._add_wol_targets(wol_targets)

    def _catch_up_jobs(self, known: list[tuple[int, Row]]) -> None:
        """Jobs carried while waiting that OCO-Server's agents have run since take their course from
        there (`oco.domain.ocoimport.job_moved_on`), so they do not run again here."""
        jobs = {
            job.id: job
            for chunk in chunks([job_id for job_id, _ in known])
            for job in self.session.scalars(select(Job).where(Job.id.in_(chunk)))
        }
        for job_id, row in known:
            job = jobs.get(job_id)
            if job is None:
                continue
            try:
                theirs = rules.job_state(row["state"])
                code = rules.return_code(row["return_code"])
            except OcoError:
                continue
            if not rules.job_moved_on(JobState(job.state), theirs):
                continue
            job.state = int(theirs)
            job.return_code = code
            job.message = rules.job_message(row["state"], row["message"])
            progress = row["download_progress"]
            job.download_progress = None if progress is None else round(float(progress))
            job.download_started = self._utc(row["download_started"])
            job.execution_started = self._utc(row["execution_started"])
            job.execution_finished = self._utc(row["execution_finished"]) or (
                self._utc(row["last_update"]) if theirs.is_final else None
            )
            job.last_update = self._utc(row["last_update"]) or job.execution_finished or self.now
            if theirs.is_final:
                job.wol_shutdown = False
            self.report.kind(ImportKind.JOB).updated += 1
        self.session.flush()
        for job in jobs.values():
            self.session.expunge(job)
        known.clear()

    def _flush_jobs(self, pending: list[tuple[int, dict[str, Any]]]) -> None:
        if pending:
            inserted = self.session.execute(
                insert(Job).returning(Job.id, sort_by_parameter_order=True), [job for _, job in pending]
            )
            ids = list(inserted.scalars())
            self._remember(
                ImportKind.JOB,
                [(source_id, job_id) for (source_id, _), job_id in zip(pending, ids, strict=True)],
            )
        pending.clear()

    def _package_infos(self, package_ids: Iterable[int]) -> dict[int, _PackageInfo]:
        ids = list(package_ids)
        infos: dict[int, _PackageInfo] = {}
        for chunk in chunks(ids):
            rows = self.session.execute(
                select(
                    Package.id,
                    PackageFamily.name,
                    Package.version,
                    Package.install_post_action,
                    Package.uninstall_post_action,
                )
                .join(PackageFamily, Package.family_id == PackageFamily.id)
                .where(Package.id.in_(chunk))
            )
            for package_id, family, version, install, uninstall in rows:
                infos[package_id] = _PackageInfo(
                    f"{family} {version}", PostAction(install), PostAction(uninstall)
                )
        return infos

    def _job(
        self, row: Row, container: JobContainer, computer_id: int, package_id: int, package: _PackageInfo
    ) -> dict[str, Any] | None:
        """The job as our row, for a multi-row INSERT; None (and the reason reported) if it cannot be."""
        label = f"job {row['id']} of container {row['job_container_id']}"
        action = JobAction.UNINSTALL if row["is_uninstall"] else JobAction.INSTALL
        own = package.uninstall_post_action if action is JobAction.UNINSTALL else package.install_post_action
        try:
            state = rules.job_state(row["state"])
            code = rules.return_code(row["return_code"])
            codes = rules.success_codes(row["success_return_codes"])
            post = rules.job_post_action(row["post_action"], row["wol_shutdown_set"] is not None, own)
        except OcoError as exc:
            self.report.skip(ImportKind.JOB, row["id"], label, exc.message)
            return None
        finished = self._utc(row["execution_finished"])
        if finished is None and state.is_final:  # OCO 1.0 kept only the time of the last change
            finished = self._utc(row["last_update"])
        progress = row["download_progress"]
        return dict(
            container_id=container.id,
            computer_id=computer_id,
            package_id=package_id,
            package_name=package.name[:255],
            action=str(action),
            sequence=int(row["sequence"] or 0),
            state=int(state),
            return_code=code,
            message=rules.job_message(row["state"], row["message"]),
            download_progress=None if progress is None else round(float(progress)),
            procedure=text_of(row["procedure"], None),
            success_codes=codes,
            post_action=int(post.post_action),
            wol_shutdown=post.wol_shutdown and state in PENDING_STATES,
            created=container.created,
            last_update=self._utc(row["last_update"]) or finished,
            download_started=self._utc(row["download_started"]),
            execution_started=self._utc(row["execution_started"]),
            execution_finished=finished,
        )

    def _wol_target(
        self,
        targets: dict[tuple[int, int], datetime | None],
        container: JobContainer,
        job: dict[str, Any],
        wol_shutdown_set: datetime | None,
    ) -> None:
        """Remember whom a WOL container still has to wake (not sent yet), or whose automatic shutdown
        may still be removed (sent, and the job still pending)."""
        if not container.wol:
            return
        key = (container.id, job["computer_id"])
        if container.wol_sent is None:
            targets.setdefault(key, None)
        elif job["wol_shutdown"] and wol_shutdown_set is not None:
            targets[key] = self._utc(wol_shutdown_set)

    def _add_wol_targets(self, targets: dict[tuple[int, int], datetime | None]) -> None:
        existing = pairs_of(self.session, select(WolTarget.container_id, WolTarget.computer_id))
        rows = [
            {"container_id": container_id, "computer_id": computer_id, "sent": sent}
            for (container_id, computer_id), sent in targets.items()
            if (container_id, computer_id) not in existing
        ]
        if rows:
            self.session.execute(insert(WolTarget), rows)


_CONTAINER_COLUMNS = (
    "name",
    "author",
    "created_by_system_user_id",
    "enabled",
    "start_time",
    "end_time",
    "notes",
    "wol_sent",
    "shutdown_waked_after_completion",
    "sequence_mode",
    "priority",
    "agent_ip_ranges",
    "time_frames",
    "created",
)
_JOB_COLUMNS = (
    "job_container_id",
    "computer_id",
    "package_id",
    "success_return_codes",
    "is_uninstall",
    "post_action",
    "post_action_timeout",
    "sequence",
    "state",
    "download_progress",
    "return_code",
    "message",
    "wol_shutdown_set",
    "download_started",
    "execution_started",
    "execution_finished",
    "last_update",
)
