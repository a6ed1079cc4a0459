"""The data plane's worker threads and its way back to the event loop (pipeline/serving/workers.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from pipeline.serving.workers import Expiry, Mailbox, WorkerPool

DEADLINE_S = 30.0


def test_posted_calls_run_in_worker_threads_and_submit_gives_a_future() -> None:
    pool = WorkerPool(3, "test-worker")
    ran: list[str] = []
    done = threading.Event()

    def record(name: str) -> None:
        ran.append(threading.current_thread().name)
        done.set()

    pool.post(record, "x")
    assert done.wait(DEADLINE_S)
    assert ran[0].startswith("test-worker_")
    assert pool.submit(lambda a, b=0: a + b, 2, b=3).result(DEADLINE_S) == 5
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda: 1 / 0).result(DEADLINE_S)
    pool.shutdown(wait=True)


def test_a_call_that_raises_does_not_stop_its_worker() -> None:
    pool = WorkerPool(1, "test-worker")
    pool.post(lambda: 1 / 0)
    assert pool.submit(lambda: "still serving").result(DEADLINE_S) == "still serving"
    pool.shutdown(wait=True)


def test_after_shutdown_new_work_is_refused_and_queued_work_is_dropped() -> None:
    pool = WorkerPool(1, "test-worker")
    release = threading.Event()
    started = threading.Event()
    ran: list[int] = []

    def block() -> None:
        started.set()
        release.wait(DEADLINE_S)

    pool.post(block)
    assert started.wait(DEADLINE_S)
    pool.post(ran.append, 1)  # queued behind the running call
    pool.shutdown(wait=False, cancel_futures=True)
    with pytest.raises(RuntimeError):
        pool.post(ran.append, 2)
    release.set()
    pool.shutdown(wait=True)
    assert ran == []


def test_mailbox_runs_calls_from_many_threads_on_the_loop_in_order_per_thread() -> None:
    async def scenario() -> dict[int, list[int]]:
        loop = asyncio.get_running_loop()
        mailbox = Mailbox(loop)
        seen: dict[int, list[int]] = {}
        all_in = loop.create_future()
        total = 4 * 500

        def deliver(sender: int, number: int) -> None:
            assert threading.current_thread() is threading.main_thread()  # on the loop's thread
            seen.setdefault(sender, []).append(number)
            if sum(map(len, seen.values())) == total and not all_in.done():
                all_in.set_result(None)

        def send(sender: int) -> None:
            for number in range(500):
                mailbox.post(deliver, sender, number)

        threads = [threading.Thread(target=send, args=(sender,)) for sender in range(4)]
        for thread in threads:
            thread.start()
        await asyncio.wait_for(all_in, DEADLINE_S)
        for thread in threads:
            thread.join()
        return seen

    seen = asyncio.run(scenario())
    assert {sender: numbers for sender, numbers in seen.items()} == {s: list(range(500)) for s in range(4)}


def test_expiry_calls_each_watched_key_once_its_time_is_up_and_never_an_unwatched_one() -> None:
    async def scenario() -> tuple[list[str], list[float]]:
        loop = asyncio.get_running_loop()
        expiry = Expiry(loop)
        fired: list[str] = []
        at: list[float] = []
        last = loop.create_future()
        started = loop.time()

        def expire(name: str) -> None:
            fired.append(name)
            at.append(loop.time() - started)
            if name == "late" and not last.done():
                last.set_result(None)

        expiry.watch("late", 0.3, expire, "late")
        expiry.watch("early", 0.1, expire, "early")  # earlier than the armed time: re-armed for it
        expiry.watch("dropped", 0.05, expire, "dropped")
        expiry.unwatch("dropped")
        expiry.unwatch("never watched")
        await asyncio.wait_for(last, DEADLINE_S)  # "dropped" was due before both: it would have fired
        return fired, at

    fired, at = asyncio.run(scenario())
    assert fired == ["early", "late"]
    assert at[0] >= 0.1 - 0.005 and at[1] >= 0.3 - 0.005  # never before its time (loop clock resolution)
