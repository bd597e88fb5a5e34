"""The shared enumerations: OCO's wire values, how job states group, and the one vocabulary."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.dispatch import WIRE_POST_ACTIONS
from oco.domain.errors import InvalidChoice
from oco.domain.states import (
    DOWNLOAD_PROGRESS_UNPACKING,
    AgentJobState,
    ContainerStatus,
    JobState,
    PostAction,
    ReturnCode,
    SequenceMode,
    UpgradeBehavior,
    Vocabulary,
)

VOCABULARIES: list[type[Vocabulary]] = [JobState, PostAction, SequenceMode, UpgradeBehavior, ContainerStatus]


def test_job_states_keep_ocos_numbers() -> None:
    assert {state.name: int(state) for state in JobState} == {
        "WAITING": 0,
        "DOWNLOADING": 1,
        "EXECUTING": 2,
        "SUCCEEDED": 3,
        "FAILED": -1,
        "EXPIRED": -2,
        "OS_INCOMPATIBLE": -3,
        "ALREADY_INSTALLED": -5,
    }


def test_wire_values_of_the_small_enumerations() -> None:
    assert [int(s) for s in AgentJobState] == [1, 2, 3, -1]
    assert (ReturnCode.AGENT_ERROR, ReturnCode.ABORTED_AFTER_FAILED_JOB) == (-9999, -8888)
    assert [int(p) for p in PostAction] == [0, 1, 2, 3]
    assert [int(m) for m in SequenceMode] == [0, 1]
    assert DOWNLOAD_PROGRESS_UNPACKING == 101


# state: (final, running, success, failure, renewable) — PROTOCOL.md "Job states" and the seed's renew.
STATE_GROUPS = {
    JobState.WAITING: (False, False, False, False, False),
    JobState.DOWNLOADING: (False, True, False, False, False),
    JobState.EXECUTING: (False, True, False, False, False),
    JobState.SUCCEEDED: (True, False, True, False, False),
    JobState.FAILED: (True, False, False, True, True),
    JobState.EXPIRED: (True, False, False, True, True),
    JobState.OS_INCOMPATIBLE: (True, False, False, True, False),
    JobState.ALREADY_INSTALLED: (True, False, True, False, False),
}


@pytest.mark.parametrize(("state", "groups"), STATE_GROUPS.items())
def test_each_state_belongs_to_its_groups(state: JobState, groups: tuple[bool, ...]) -> None:
    assert (
        state.is_final,
        state.is_running,
        state.is_success,
        state.is_failure,
        state.is_renewable,
    ) == groups


def test_every_state_is_in_the_table() -> None:
    assert set(STATE_GROUPS) == set(JobState)


# The vocabulary ------------------------------------------------------------------------------------


def test_the_texts_programs_use() -> None:
    assert PostAction.texts() == ("none", "restart", "shutdown", "exit")
    assert SequenceMode.texts() == ("ignore", "abort")
    assert UpgradeBehavior.texts() == ("explicit-uninstall", "installer-removes", "keep")
    assert JobState.OS_INCOMPATIBLE.text == "os_incompatible"
    assert ContainerStatus.IN_PROGRESS.text == "in-progress"


def test_the_labels_people_read() -> None:
    assert PostAction.EXIT_AGENT.label == "Exit agent"
    assert SequenceMode.ABORT_AFTER_FAILED.label == "Abort after failed job"
    assert UpgradeBehavior.EXPLICIT_UNINSTALL.label == "Automatically create uninstall jobs"
    assert JobState.OS_INCOMPATIBLE.label == "OS incompatible"
    assert ContainerStatus.IN_PROGRESS.label == "In progress"


@pytest.mark.parametrize("vocabulary", VOCABULARIES)
def test_every_member_reads_back_from_its_text(vocabulary: type[Vocabulary]) -> None:
    members = list(vocabulary)  # type: ignore[call-overload]  # every Vocabulary here is an Enum
    assert [vocabulary.from_text(member.text) for member in members] == members
    assert vocabulary.from_text(f"  {members[0].text} ") is members[0]
    assert len(set(vocabulary.texts())) == len(members)
    assert all(member.label for member in members)


def test_the_post_actions_wire_keys_are_their_texts() -> None:
    assert [action.text for action in WIRE_POST_ACTIONS] == ["restart", "shutdown", "exit"]


@pytest.mark.parametrize("vocabulary", VOCABULARIES)
@given(text=st.text(max_size=20))
def test_any_other_spelling_is_refused_with_the_choices(vocabulary: type[Vocabulary], text: str) -> None:
    if text.strip() in vocabulary.texts():
        return
    with pytest.raises(InvalidChoice) as raised:
        vocabulary.from_text(text)
    assert ", ".join(vocabulary.texts()) in raised.value.message


def test_the_old_spelling_of_exit_agent_is_refused() -> None:
    with pytest.raises(
        InvalidChoice, match="post action 'exit_agent' must be one of none, restart"
    ) as raised:
        PostAction.from_text("exit_agent")
    assert raised.value.field == "post_action"
    assert PostAction.from_text("exit", field="install_post_action") is PostAction.EXIT_AGENT
