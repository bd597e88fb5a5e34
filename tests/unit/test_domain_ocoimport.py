"""How OCO-Server's stored values become ours (`oco.domain.ocoimport`)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain import ocoimport as rules
from oco.domain.ocoimport import ContainerWol, GroupRow, ImportReport, UnsupportedValue
from oco.domain.states import JobState, PostAction, SequenceMode, UpgradeBehavior

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("code", "behavior"),
    [
        (0, UpgradeBehavior.KEEP),
        (1, UpgradeBehavior.INSTALLER_REMOVES),
        (2, UpgradeBehavior.EXPLICIT_UNINSTALL),
        (None, UpgradeBehavior.EXPLICIT_UNINSTALL),
    ],
)
def test_upgrade_behaviors_are_ocos_codes(code: int | None, behavior: UpgradeBehavior) -> None:
    assert rules.upgrade_behavior(code) is behavior


@given(st.integers().filter(lambda n: n not in (0, 1, 2)))
def test_an_unknown_upgrade_behavior_is_refused_with_its_value(code: int) -> None:
    with pytest.raises(UnsupportedValue, match=str(code)):
        rules.upgrade_behavior(code)


@pytest.mark.parametrize("code", [0, 1, 2, 3])
def test_post_actions_keep_their_numbers(code: int) -> None:
    assert rules.post_action(code) is PostAction(code)


def test_no_post_action_is_none_and_an_unknown_one_is_refused() -> None:
    assert rules.post_action(None) is PostAction.NONE
    with pytest.raises(UnsupportedValue, match="post-action 7"):
        rules.post_action(7)


@pytest.mark.parametrize("state", list(JobState))
def test_job_states_keep_their_numbers(state: JobState) -> None:
    assert rules.job_state(int(state)) is state


def test_a_package_conflict_is_a_failure_that_says_so() -> None:
    assert rules.job_state(rules.PACKAGE_CONFLICT_STATE) is JobState.FAILED
    assert rules.job_message(-4, "") == rules.PACKAGE_CONFLICT_NOTE
    assert rules.job_message(-4, "out").splitlines() == [rules.PACKAGE_CONFLICT_NOTE, "out"]
    assert rules.job_message(3, "out") == "out"
    assert rules.job_message(0, None) == ""


def test_an_unknown_job_state_is_refused() -> None:
    with pytest.raises(UnsupportedValue, match="job state 9"):
        rules.job_state(9)


@pytest.mark.parametrize(
    ("code", "mode"), [(0, SequenceMode.IGNORE_FAILED), (1, SequenceMode.ABORT_AFTER_FAILED)]
)
def test_sequence_modes(code: int, mode: SequenceMode) -> None:
    assert rules.sequence_mode(code) is mode


def test_an_unknown_sequence_mode_is_refused() -> None:
    with pytest.raises(UnsupportedValue, match="sequence mode 2"):
        rules.sequence_mode(2)


@given(st.integers(min_value=rules.INT32_MIN, max_value=rules.INT32_MAX))
def test_return_codes_in_32_bits_are_kept(code: int) -> None:
    assert rules.return_code(code) == code


@given(st.integers(min_value=rules.INT32_MAX + 1, max_value=rules.UINT32_RANGE - 1))
def test_unsigned_windows_codes_are_read_as_the_same_bits_signed(code: int) -> None:
    signed = rules.return_code(code)
    assert signed is not None and signed < 0 and signed % rules.UINT32_RANGE == code


def test_a_windows_status_code_and_codes_beyond_32_bits() -> None:
    assert rules.return_code(3221225477) == -1073741819
    assert rules.return_code(None) is None
    with pytest.raises(UnsupportedValue, match="4294967296"):
        rules.return_code(2**32)


def test_success_codes_are_normalized_and_bad_ones_refused() -> None:
    assert rules.success_codes("3010, 0") == "0,3010"
    assert rules.success_codes("") == ""
    assert rules.success_codes(None) == ""
    with pytest.raises(UnsupportedValue, match="'x'"):
        rules.success_codes("0,x")


def test_compatibility_lists_are_read_as_oco_joins_them() -> None:
    assert rules.compatibility(" Windows 10, Windows 11 ") == "Windows 10, Windows 11"
    assert rules.compatibility(None) == ""


@pytest.mark.parametrize(
    ("value", "priority"), [(0, 0), (5, 5), (-100, -100), (127, 100), (-128, -100), (None, 0)]
)
def test_priorities_are_clamped_to_ours(value: int | None, priority: int) -> None:
    assert rules.priority(value) == priority


@given(st.integers(min_value=-128, max_value=127), st.integers(min_value=-128, max_value=127))
def test_clamping_keeps_the_order_of_priorities(a: int, b: int) -> None:
    if a <= b:
        assert rules.priority(a) <= rules.priority(b)


def test_local_times_become_utc_across_daylight_saving() -> None:
    assert rules.utc(datetime(2026, 6, 1, 10, 0), BERLIN) == datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    assert rules.utc(datetime(2026, 1, 5, 10, 0), BERLIN) == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert rules.utc(None, BERLIN) is None
    assert rules.utc(datetime(1, 1, 1), BERLIN) is None  # MariaDB's zero date


def test_nested_groups_are_named_by_their_path() -> None:
    names = rules.group_names(
        [
            GroupRow(1, "Site A", None),
            GroupRow(2, "Floor 2", 1),
            GroupRow(3, " Room 7 ", 2),
            GroupRow(4, "B", None),
        ]
    )
    assert names == {1: "Site A", 2: "Site A / Floor 2", 3: "Site A / Floor 2 / Room 7", 4: "B"}


def test_a_missing_parent_or_a_cycle_ends_the_path() -> None:
    names = rules.group_names([GroupRow(1, "a", 2), GroupRow(2, "b", 1), GroupRow(3, "c", 99)])
    assert names == {1: "b / a", 2: "a / b", 3: "c"}


@given(
    st.lists(st.tuples(st.integers(0, 20), st.text(min_size=1, max_size=5), st.none() | st.integers(0, 20)))
)
def test_every_group_gets_a_name_ending_in_its_own(rows: list[tuple[int, str, int | None]]) -> None:
    groups = {i: GroupRow(i, name, parent) for i, name, parent in rows}
    names = rules.group_names(groups.values())
    assert set(names) == set(groups)
    for group_id, name in names.items():
        assert name.endswith(groups[group_id].name.strip())


@pytest.mark.parametrize(
    ("wol_sent", "wol"),
    [
        (0, ContainerWol(wol=True, sent=False)),
        (1, ContainerWol(wol=True, sent=True)),
        (-1, ContainerWol(wol=False, sent=False)),
        (None, ContainerWol(wol=False, sent=False)),
    ],
)
def test_container_wake_on_lan(wol_sent: int | None, wol: ContainerWol) -> None:
    assert rules.container_wol(wol_sent) == wol


def test_a_shutdown_that_may_still_be_removed_keeps_the_packages_post_action_and_the_flag() -> None:
    carried = rules.job_post_action(int(PostAction.SHUTDOWN), True, PostAction.EXIT_AGENT)
    assert carried == rules.JobPostAction(PostAction.EXIT_AGENT, wol_shutdown=True)


def test_a_shutdown_for_good_and_plain_post_actions_are_kept() -> None:
    assert rules.job_post_action(2, False, PostAction.NONE) == rules.JobPostAction(PostAction.SHUTDOWN, False)
    assert rules.job_post_action(None, False, PostAction.RESTART) == rules.JobPostAction(
        PostAction.NONE, False
    )


def test_the_restart_timeout_is_the_most_common_of_the_jobs() -> None:
    assert rules.restart_timeout([10, 10, 5, None]) == 10
    assert rules.restart_timeout([5, 10]) == 5
    assert rules.restart_timeout([None]) == rules.DEFAULT_RESTART_TIMEOUT
    assert rules.restart_timeout([], default=3) == 3
    assert rules.restart_timeout([-1, -1, 20]) == -1


def test_package_group_members_come_in_their_sequence_then_as_added() -> None:
    assert rules.package_group_order([(10, 1, 2), (11, 2, 1), (12, 3, 1), (9, 4, 5)]) == [11, 12, 10, 9]


def test_logins_read_as_an_agent_reports_them() -> None:
    at = datetime(2026, 5, 31, 6, 0, tzinfo=UTC)
    assert rules.login_entry("bob", None, at) == {
        "username": "bob",
        "console": "",
        "timestamp": "2026-05-31 06:00:00",
    }
    assert rules.login_entry("bob", "tty7", None)["timestamp"] == ""


def test_a_report_counts_per_kind() -> None:
    report = ImportReport(dry_run=True)
    report.kind("computer").imported += 2
    report.skip("computer", 3, "pc3", "exists")
    report.kind("job").already_imported += 1
    assert report.changed == 2
    assert report.kinds["computer"].skipped[0].reason == "exists"
    assert report.kinds["job"].imported == 0


def _trace(key: str = "", timestamp: float = 0.0, seen: int | None = None) -> rules.AgentTrace:
    at = None if seen is None else datetime(2026, 6, seen, tzinfo=UTC)
    return rules.AgentTrace(key, key and f"s-{key}", timestamp, at, at)


def test_catching_up_takes_the_newest_of_each_and_keys_only_where_ours_are_empty() -> None:
    assert rules.caught_up(_trace("", 1.0, 1), _trace("theirs", 5.0, 2)) == _trace("theirs", 5.0, 2)
    assert rules.caught_up(_trace("ours", 9.0, 3), _trace("theirs", 5.0, 2)) == _trace("ours", 9.0, 3)
    assert rules.caught_up(_trace("ours", 1.0, None), _trace("", 0.0, 2)) == rules.AgentTrace(
        "ours", "s-ours", 1.0, datetime(2026, 6, 2, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC)
    )


@given(st.floats(0, 2e9), st.floats(0, 2e9), st.sampled_from(["", "a"]), st.sampled_from(["", "b"]))
def test_catching_up_twice_changes_nothing_more_and_never_goes_back(
    ours: float, theirs: float, our_key: str, their_key: str
) -> None:
    once = rules.caught_up(_trace(our_key, ours), _trace(their_key, theirs))
    assert rules.caught_up(once, _trace(their_key, theirs)) == once
    assert once.agent_timestamp >= ours and (once.agent_key == our_key or not our_key)


def test_an_inventory_is_newer_only_when_the_source_has_a_later_one() -> None:
    early, late = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC)
    assert rules.inventory_is_newer(None, early)
    assert rules.inventory_is_newer(early, late)
    assert not rules.inventory_is_newer(late, early)
    assert not rules.inventory_is_newer(early, early)
    assert not rules.inventory_is_newer(early, None)


@pytest.mark.parametrize("ours", list(JobState))
@pytest.mark.parametrize("theirs", list(JobState))
def test_only_a_job_still_waiting_here_takes_the_sources_course(ours: JobState, theirs: JobState) -> None:
    assert rules.job_moved_on(ours, theirs) == (ours is JobState.WAITING and theirs is not JobState.WAITING)
