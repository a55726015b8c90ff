"""``--processes P``: one run spread over P worker processes, merged in the parent.

Each worker (multiprocessing ``spawn``: no inherited event loop or sockets) runs its shard
of the request indices with its share of the concurrency, then sends back its counters and
encoded histograms. Workers wait at a barrier so they start together; the parent reaps
every worker it started, also when one fails.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
import traceback
from dataclasses import replace
from multiprocessing import connection
from multiprocessing.connection import Connection
from typing import Any

from loadgen import schedule, wire
from loadgen.accumulators import RunResult, merge_results
from loadgen.engine import ProgressCallback
from loadgen.plan import LoadPlan

__all__ = ["WorkerError", "run_in_processes", "shard_plans"]

STARTUP_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.25


class WorkerError(RuntimeError):
    """A worker process failed or did not answer in time."""


def shard_plans(plan: LoadPlan) -> list[LoadPlan]:
    """The plan each of ``plan.processes`` workers runs: its share of the clients.

    Request counts and rates stay global: each worker sends the indices of its shard
    (``i, i+P, ...``), which splits both evenly and interleaves the open loop's schedule.
    A storm run is not sharded (``loadgen.runner.run_storm`` says why).
    """
    if plan.storm:
        raise ValueError("a storm run (retries or a trigger) runs in one process")
    shares = schedule.split_evenly(plan.concurrency, plan.processes)
    return [replace(plan, concurrency=share, processes=1, sweep=None) for share in shares]


def _worker_main(
    plan: LoadPlan,
    shard: tuple[int, int],
    barrier: Any,
    progress: Any,
    conn: Connection,
) -> None:
    from loadgen.session import run_level, run_sync

    index = shard[0]

    def on_progress(done: int, elapsed: float) -> None:
        progress[index] = done

    try:
        barrier.wait(STARTUP_TIMEOUT_S)
        result = run_sync(lambda: run_level(plan, shard=shard, on_progress=on_progress))
        conn.send({"result": wire.result_to_wire(result)})
    except BaseException:
        conn.send({"error": traceback.format_exc()})
    finally:
        conn.close()


def run_in_processes(plan: LoadPlan, on_progress: ProgressCallback | None = None) -> RunResult:
    """Run one level of ``plan`` over ``plan.processes`` spawned workers; merge their results."""
    context = multiprocessing.get_context("spawn")
    plans = shard_plans(plan)
    barrier = context.Barrier(len(plans))
    progress = context.Array("q", len(plans), lock=False)
    workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
    deadline = time.monotonic() + STARTUP_TIMEOUT_S + plan.run_deadline_s() + 10.0
    try:
        for index, worker_plan in enumerate(plans):
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(
                target=_worker_main,
                args=(worker_plan, (index, len(plans)), barrier, progress, sender),
                name=f"loadgen-worker-{index}",
                daemon=True,
            )
            process.start()
            sender.close()
            workers.append((process, receiver))
        results = _collect(workers, progress, deadline, on_progress)
    finally:
        for worker, receiver in workers:
            _reap(worker)
            receiver.close()
    return merge_results(results)


def _collect(
    workers: list[tuple[multiprocessing.process.BaseProcess, Connection]],
    progress: Any,
    deadline: float,
    on_progress: ProgressCallback | None,
) -> list[RunResult]:
    answers: dict[int, dict[str, Any]] = {}
    pending = {receiver: index for index, (_, receiver) in enumerate(workers)}
    started = time.monotonic()
    while pending:
        if time.monotonic() > deadline:
            raise WorkerError("load generator workers did not finish before the deadline")
        # A worker that dies closes its end of the pipe: wait() wakes and recv() raises EOF.
        for ready in connection.wait(list(pending), timeout=POLL_INTERVAL_S):
            assert isinstance(ready, Connection)
            index = pending.pop(ready)
            try:
                answers[index] = ready.recv()
            except EOFError:
                code = workers[index][0].exitcode
                raise WorkerError(f"worker {index} exited (code {code}) without a result") from None
        if on_progress is not None:
            on_progress(sum(progress), time.monotonic() - started)
    results = []
    for index in range(len(workers)):
        answer = answers[index]
        if "error" in answer:
            raise WorkerError(f"worker {index} failed:\n{answer['error']}")
        results.append(wire.result_from_wire(answer["result"]))
    return results


def _reap(process: multiprocessing.process.BaseProcess) -> None:
    # Ours alone: a worker we started, by its own handle.
    process.join(timeout=5.0)
    if process.is_alive():
        process.terminate()
        process.join(timeout=5.0)
    if process.is_alive():
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.join(timeout=5.0)
