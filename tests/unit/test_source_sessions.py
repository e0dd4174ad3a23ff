"""The drain of the source's sessions after the switch, on a fake clock and a fake process list."""

from __future__ import annotations

from migrator.source_sessions import ConnectionTail, SourceSession, drain


class Clock:
    def __init__(self, start: float) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


class ProcessList:
    """Sessions present per moment; a killed one is gone; ``comes_back`` reconnects after a kill (stale DNS)."""

    def __init__(self, sessions: list[SourceSession], *, comes_back: int = 0, leaves_at: float | None = None) -> None:
        self.sessions = {s.id: s for s in sessions}
        self.killed: list[int] = []
        self.comes_back = comes_back
        self.leaves_at = leaves_at
        self.clock: Clock | None = None

    def list(self) -> list[SourceSession]:
        assert self.clock is not None
        if self.leaves_at is not None and self.clock.now() >= self.leaves_at:
            self.sessions.clear()
        return list(self.sessions.values())

    def kill_session(self, thread_id: int) -> None:
        gone = self.sessions.pop(thread_id)
        self.killed.append(thread_id)
        if self.comes_back > 0:
            self.comes_back -= 1
            new_id = max([thread_id, *self.sessions]) + 100
            self.sessions[new_id] = SourceSession(new_id, gone.user, gone.host, "Sleep", 0, None)


def app(id_: int, user: str = "app") -> SourceSession:
    return SourceSession(id_, user, "10.0.0.5", "Sleep", 120, "shop")


def run(plist: ProcessList, *, grace: float, give_up_after: float = 60.0) -> ConnectionTail:
    clock = Clock(1000.0)
    plist.clock = clock
    tail = ConnectionTail(switched_at=1000.0, grace_seconds=grace, at_switch={"app@10.0.0.5": 2})
    return drain(plist.list, plist, tail, now=clock.now, sleep=clock.sleep, give_up_after=give_up_after)


def test_sessions_that_leave_within_the_grace_are_not_killed() -> None:
    plist = ProcessList([app(1), app(2)], leaves_at=1001.0)
    tail = run(plist, grace=5)
    assert plist.killed == [] and tail.ended_by_force == 0
    assert tail.tail_seconds == 1.0


def test_after_the_grace_every_session_is_ended_and_a_reconnect_to_the_old_source_too() -> None:
    plist = ProcessList([app(1), app(2, "report")], comes_back=1)
    tail = run(plist, grace=3)
    assert tail.ended_by_force == 3 and len(plist.killed) == 3
    assert tail.ended_by_account == {"app@10.0.0.5": 2, "report@10.0.0.5": 1}
    assert 3.0 <= tail.tail_seconds < 3.5 and tail.remaining == {}


def test_a_client_that_keeps_coming_back_is_reported_not_hidden() -> None:
    plist = ProcessList([app(1)], comes_back=10_000)
    tail = run(plist, grace=1, give_up_after=2)
    assert tail.remaining == {"app@10.0.0.5": 1} and tail.tail_seconds is None
    assert tail.as_fact()["remaining"] == {"app@10.0.0.5": 1}


def test_no_session_at_the_switch_means_no_tail() -> None:
    clock = Clock(1005.0)  # our first look comes 5 s after the switch
    tail = drain(lambda: [], ProcessList([]), ConnectionTail(switched_at=1000.0, grace_seconds=30),
                 now=clock.now, sleep=clock.sleep)
    assert tail.tail_seconds == 0.0
