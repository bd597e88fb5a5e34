"""Login throttling on every database: counts per account name and per client address, lockouts that grow,
an audit entry per failure, state shared by processes, and Argon2 outside the writer lock."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from oco.db.models import AuditLog, LoginFailure
from oco.errors import TooManyAttempts, Unauthorized
from oco.services import audit, housekeeping, users
from oco.services.listing import PageRequest
from oco.services.runtime import Runtime
from tests.conftest import Clock, make_runtime

PASSWORD = "the right password"
THROTTLE = {
    "login_lockout_after": 3,
    "login_lockout_seconds": 10,
    "login_lockout_max_seconds": 60,
    "login_failures_forgotten_after_seconds": 600,
}


@pytest.fixture
def rt(database_url: str, tmp_path: Path, clock: Clock) -> Iterator[Runtime]:
    runtime = make_runtime(database_url, tmp_path, clock, **THROTTLE)
    users.add_user(runtime, "ada", PASSWORD, "tests")
    yield runtime
    runtime.close()


def fail(rt: Runtime, username: str = "ada", address: str = "198.51.100.7", times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Unauthorized, match="wrong user name or password"):
            users.log_in(rt, username, "wrong password", address)


def test_the_given_failure_locks_the_account_even_for_the_right_password(rt: Runtime, clock: Clock) -> None:
    fail(rt, times=2)
    assert users.log_in(rt, "ada", PASSWORD, "198.51.100.7")  # two failures are free; a success clears them
    fail(rt, times=3)

    with pytest.raises(TooManyAttempts, match=r"retry in 10 s") as refused:
        users.log_in(rt, "ada", PASSWORD, "203.0.113.9")  # another address: the account is locked
    assert refused.value.retry_after == 10

    clock.advance(seconds=10)
    assert users.log_in(rt, "ada", PASSWORD, "203.0.113.9")


def test_each_further_failure_doubles_the_lockout_up_to_the_cap(rt: Runtime, clock: Clock) -> None:
    fail(rt, times=2)  # free
    lockouts = []
    for _ in range(5):
        fail(rt)
        with pytest.raises(TooManyAttempts) as refused:
            users.log_in(rt, "ada", PASSWORD, "198.51.100.7")
        lockouts.append(refused.value.retry_after)
        clock.advance(seconds=refused.value.retry_after)

    assert lockouts == [10, 20, 40, 60, 60]


def test_refusals_while_locked_do_not_count_and_check_no_password(rt: Runtime, clock: Clock) -> None:
    fail(rt, times=3)
    checked = counting_hasher(rt)
    for _ in range(5):
        with pytest.raises(TooManyAttempts):
            users.log_in(rt, "ada", "wrong password", "198.51.100.7")
    assert checked.calls == 0
    with rt.reading() as session:
        assert set(session.scalars(select(LoginFailure.failures))) == {3}


def test_an_address_trying_many_names_is_locked_for_every_name(rt: Runtime) -> None:
    for name in ("root", "admin", "ada"):
        fail(rt, username=name, address="198.51.100.7")

    with pytest.raises(TooManyAttempts):
        users.log_in(rt, "ada", PASSWORD, "198.51.100.7")
    assert users.log_in(rt, "ada", PASSWORD, "203.0.113.9")  # the account itself had one failure


def test_failures_long_ago_are_forgotten_and_housekeeping_removes_them(rt: Runtime, clock: Clock) -> None:
    fail(rt, times=2)
    clock.advance(seconds=600)
    fail(rt, times=2)  # counts 1 and 2 again: not locked
    assert users.log_in(rt, "ada", PASSWORD, "198.51.100.7")

    fail(rt, username="nobody", address="192.0.2.1")
    clock.advance(seconds=601)
    assert housekeeping.run_task(rt, housekeeping.find_task("forget-login-failures")) == 2
    with rt.reading() as session:
        assert session.scalar(select(func.count()).select_from(LoginFailure)) == 0


def test_every_failure_is_audited_with_its_address(rt: Runtime) -> None:
    fail(rt, times=3)
    fail(rt, username="nobody", address="192.0.2.1")

    page = audit.search_audit(rt, audit.AuditQuery(action="user.login_failure"), PageRequest())
    entries = sorted(page.items, key=lambda entry: entry.id)
    assert [entry.actor for entry in entries] == ["client:198.51.100.7"] * 3 + ["client:192.0.2.1"]
    assert entries[2].details is not None
    assert entries[2].details["username"] == "ada" and entries[2].details["locked_seconds"] == 10
    assert entries[3].details is not None and entries[3].details["username"] == "nobody"


def test_the_counts_are_shared_by_every_process(
    rt: Runtime, database_url: str, tmp_path: Path, clock: Clock
) -> None:
    other = make_runtime(database_url, tmp_path, clock, **THROTTLE)  # another server process, same database
    try:
        fail(rt, times=2)
        fail(other, times=1)
        with pytest.raises(TooManyAttempts):
            users.log_in(rt, "ada", PASSWORD, "198.51.100.7")
    finally:
        other.close()


def test_the_password_is_verified_outside_the_writer_lock(rt: Runtime) -> None:
    """While a (slow) Argon2 verification runs, another thread can write: the verifier waits until an agent-
    like write transaction has committed. Were the verification inside the writer lock, neither could
    proceed and the write would time out."""
    written = threading.Event()
    problems: list[BaseException] = []

    def write() -> None:
        try:
            with rt.transaction() as session:
                audit.record(session, "agent", "inventory", "computer", None)
            written.set()
        except BaseException as exc:  # reported by the test thread
            problems.append(exc)

    class WaitingHasher(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            writer = threading.Thread(target=write)
            writer.start()
            writer.join(timeout=60)
            return super().verify(hash, password)

    use_hasher(rt, WaitingHasher())
    for password in ("wrong password", PASSWORD):
        written.clear()
        with contextlib.suppress(Unauthorized):
            users.log_in(rt, "ada", password, "198.51.100.7")
        assert written.is_set() and not problems, problems
    with rt.reading() as session:
        assert session.scalar(select(func.count()).where(AuditLog.action == "inventory")) == 2


class CountingHasher(PasswordHasher):
    calls = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        CountingHasher.calls += 1
        return super().verify(hash, password)

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        CountingHasher.calls += 1
        return super().hash(password, salt=salt)


def counting_hasher(rt: Runtime) -> type[CountingHasher]:
    CountingHasher.calls = 0
    use_hasher(rt, CountingHasher())
    return CountingHasher


_ORIGINAL = users._hasher


def use_hasher(rt: Runtime, hasher: PasswordHasher) -> None:
    """Verify `rt`'s passwords with `hasher` (the module's hasher; restored after each test)."""
    users._hasher = hasher


@pytest.fixture(autouse=True)
def _restore_hasher() -> Iterator[None]:
    yield
    users._hasher = _ORIGINAL
