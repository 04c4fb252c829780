"""The gathering of a batch's calls (smsgw.gathering), with threads and no I/O."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from smsgw.gathering import Batch, current

HANG = 30.0  # far beyond any wait the gathering makes: a thread still alive then is stuck


class Recorder:
    """A gathered call: the items of each round it is made with; an item "fail" gets its own error."""

    def __init__(self) -> None:
        self.rounds: list[list[Any]] = []
        self.lock = threading.Lock()

    def __call__(self, items: list[Any]) -> list[Any]:
        with self.lock:
            self.rounds.append(sorted(items))
        return [ValueError(item) if item == "fail" else f"done {item}" for item in items]


def run_members(batch: Batch, works: list[Callable[[], Any]]) -> list[Any]:
    """Each work in a thread of its own, as one member of the batch: what each returned or raised."""
    results: list[Any] = [None] * len(works)

    def member(index: int) -> None:
        with batch.member():
            try:
                results[index] = works[index]()
            except Exception as exc:
                results[index] = exc

    threads = [threading.Thread(target=member, args=(i,)) for i in range(len(works))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG)
    assert not any(thread.is_alive() for thread in threads), "a member is stuck"
    return results


def gather(run: Recorder, item: Any) -> Callable[[], Any]:
    def work() -> Any:
        member = current()
        assert member is not None
        return member.gather("call", run, item)

    return work


def test_every_member_s_call_is_made_once_together_and_each_gets_its_own_answer() -> None:
    run = Recorder()
    results = run_members(Batch(4, linger=HANG), [gather(run, i) for i in ("a", "b", "fail", "c")])

    assert run.rounds == [["a", "b", "c", "fail"]]
    assert results[:2] == ["done a", "done b"]
    assert results[3] == "done c"
    assert isinstance(results[2], ValueError)


def test_a_member_that_ends_without_coming_is_not_waited_for() -> None:
    run = Recorder()
    # However long the linger, the gathering is made once the third member has ended
    results = run_members(Batch(3, linger=HANG), [gather(run, "a"), gather(run, "b"), lambda: "no call"])
    assert run.rounds == [["a", "b"]]
    assert results == ["done a", "done b", "no call"]


def test_a_late_member_is_not_waited_for_beyond_the_linger_and_makes_its_own_call() -> None:
    run = Recorder()
    late = threading.Event()

    def slow() -> Any:
        late.wait(HANG)
        return gather(run, "late")()

    def first() -> Any:
        answer = gather(run, "a")()
        late.set()  # only once the others' call is made
        return answer

    results = run_members(Batch(3, linger=0.05), [first, gather(run, "b"), slow])
    assert run.rounds == [["a", "b"], ["late"]]
    assert results == ["done a", "done b", "done late"]


def test_a_second_call_of_one_name_is_made_alone() -> None:
    run = Recorder()

    def twice() -> Any:
        return [gather(run, "x")(), gather(run, "y")()]

    [answers] = run_members(Batch(1, linger=HANG), [twice])
    assert answers == ["done x", "done y"]
    assert run.rounds == [["x"], ["y"]]


def test_a_call_that_raises_fails_every_member_in_it() -> None:
    def broken(items: list[Any]) -> list[Any]:
        raise RuntimeError("down")

    def work() -> Any:
        member = current()
        assert member is not None
        return member.gather("call", broken, 1)

    results = run_members(Batch(2, linger=HANG), [work, work])
    assert [str(r) for r in results] == ["down", "down"]


def test_outside_a_batch_there_is_no_member() -> None:
    assert current() is None
    with Batch(1).member() as member:
        assert current() is member
    assert current() is None


@pytest.mark.parametrize("size", [1, 10])
def test_gathered_calls_are_made_with_every_item_whatever_the_batch_size(size: int) -> None:
    run = Recorder()
    results = run_members(Batch(size, linger=HANG), [gather(run, i) for i in range(size)])
    assert results == [f"done {i}" for i in range(size)]
    assert run.rounds == [list(range(size))]
