"""The check-in ledger: replay protection inside the process, before the database confirms."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from oco.services.ledger import TIMESTAMP_STEP, CheckinLedger, Claim

SEEN = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
KEY = "agent-key"


def claim(
    ledger: CheckinLedger,
    timestamp: float,
    *,
    computer_id: int = 1,
    key: str = KEY,
    stored: float = 0.0,
    stored_server: float = 0.0,
) -> Claim | None:
    return ledger.claim(
        computer_id,
        key,
        stored,
        stored_server,
        timestamp,
        seen=SEEN,
        address="127.0.0.1",
        uid="uid",
    )


def test_a_timestamp_is_accepted_once() -> None:
    ledger = CheckinLedger()
    assert claim(ledger, 100.0) is not None
    assert claim(ledger, 100.0) is None
    assert claim(ledger, 99.0) is None
    assert claim(ledger, 100.5) is not None


def test_the_stored_timestamp_counts_too() -> None:
    ledger = CheckinLedger()
    assert claim(ledger, 100.0, stored=100.0) is None
    assert claim(ledger, 100.0, stored=50.0) is not None
    # The database may lag behind this process, or be ahead of it (another process wrote it).
    assert claim(ledger, 150.0, stored=50.0) is not None
    assert claim(ledger, 160.0, stored=200.0) is None


def test_server_timestamps_increase_even_when_the_clock_does_not() -> None:
    ledger = CheckinLedger()
    far_future = 4_000_000_000.0
    first = claim(ledger, 1.0, stored_server=far_future)
    second = claim(ledger, 2.0, stored_server=0.0)
    assert first is not None and second is not None
    assert first.server_timestamp >= far_future + TIMESTAMP_STEP
    assert second.server_timestamp >= first.server_timestamp + TIMESTAMP_STEP


def test_a_new_agent_key_starts_afresh() -> None:
    """A computer given new keys (or a deleted computer's id reused) is not bound by old entries."""
    ledger = CheckinLedger()
    assert claim(ledger, 100.0, key="old") is not None
    assert claim(ledger, 50.0, key="new") is not None
    assert ledger.last_agent_timestamp(1, "new", 10.0) == 50.0
    assert ledger.last_agent_timestamp(1, "old", 10.0) == 10.0


def test_computers_are_independent() -> None:
    ledger = CheckinLedger()
    assert claim(ledger, 100.0, computer_id=1) is not None
    assert claim(ledger, 100.0, computer_id=2) is not None


def test_a_reverted_claim_frees_its_timestamp() -> None:
    ledger = CheckinLedger()
    assert claim(ledger, 100.0) is not None
    failed = claim(ledger, 200.0)
    assert failed is not None
    ledger.revert(failed)
    assert ledger.last_agent_timestamp(1, KEY, 0.0) == 100.0
    assert claim(ledger, 150.0) is not None


def test_reverting_the_only_claim_forgets_the_computer() -> None:
    ledger = CheckinLedger()
    failed = claim(ledger, 100.0)
    assert failed is not None
    ledger.revert(failed)
    assert ledger.last_agent_timestamp(1, KEY, 7.0) == 7.0
    assert claim(ledger, 100.0) is not None


def test_a_revert_after_a_newer_claim_keeps_the_newer_one() -> None:
    ledger = CheckinLedger()
    older = claim(ledger, 100.0)
    newer = claim(ledger, 200.0)
    assert older is not None and newer is not None
    ledger.revert(older)
    assert ledger.last_agent_timestamp(1, KEY, 0.0) == 200.0


def test_concurrent_claims_of_one_timestamp_accept_exactly_one() -> None:
    ledger = CheckinLedger()
    barrier = threading.Barrier(16)
    results: list[Claim | None] = []

    def race() -> None:
        barrier.wait()
        results.append(claim(ledger, 100.0))

    threads = [threading.Thread(target=race) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(result is not None for result in results) == 1


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=1e9, allow_nan=False),
            st.booleans(),  # the request fails afterwards (or the database refuses it) and is reverted
        ),
        max_size=60,
    ),
    st.floats(min_value=0, max_value=1e9, allow_nan=False),
)
def test_accepted_timestamps_and_answers_only_ever_increase(
    requests: list[tuple[float, bool]], stored: float
) -> None:
    ledger = CheckinLedger()
    accepted: list[float] = []
    answered: list[float] = []
    for timestamp, fails in requests:
        result = claim(ledger, timestamp, stored=stored)
        newest = max([stored, *accepted])
        assert (result is not None) == (timestamp > newest)
        if result is None:
            continue
        if fails:  # answered with an error: the agent never sees that server timestamp
            ledger.revert(result)
        else:
            accepted.append(timestamp)
            answered.append(result.server_timestamp)
    assert accepted == sorted(set(accepted))
    assert answered == sorted(set(answered))
