"""The fault matrix: the engine against the fake W&B server, on a virtual clock.

Every case drives a real :class:`~trackmux._engine.Engine` with the W&B plugin talking to an
in-process :class:`~trackmux_wandb.testing.FakeWandB`, inside a
:class:`~trackmux.testing.VirtualTimeLoop`: backoffs, ``Retry-After`` waits, batch intervals
and a ten-minute outage take no real time and are exactly reproducible. In every case every
row must arrive exactly once and in order (``fake.history``).
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trackmux
from trackmux import JobStatus, TrainingConfig
from trackmux._engine import Engine
from trackmux._plugins import get_plugin_manager, tracker_caller
from trackmux._retry import Backoff
from trackmux.testing import VirtualTimeLoop, run_on_virtual_clock
from trackmux_wandb.testing import AfterApply, Drop, FakeWandB, Status, Timeout

PROJECT = "faults"
ROWS = 250


@pytest.fixture(autouse=True)
def _no_wandb_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("WANDB_API_KEY", "WANDB_ENTITY", "WANDB_BASE_URL", "WANDB_PROJECT",
                 "WANDB_APP_URL", "WANDB_HTTP_TIMEOUT", "TRACKMUX_TRACKERS", "TRACKMUX_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


class ClockedTransport(httpx.AsyncBaseTransport):
    """The fake's in-process transport, noting the virtual time of every request."""

    def __init__(self, fake: FakeWandB) -> None:
        self.inner = fake.transport()
        self.clock: Callable[[], float] = lambda: 0.0
        self.sent: list[tuple[float, str]] = []  # (virtual time, url path)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((self.clock(), request.url.path))
        return await self.inner.handle_async_request(request)

    def file_stream_times(self) -> list[float]:
        return [at for at, path in self.sent if path.endswith("/file_stream")]


def run_virtual(fake: FakeWandB, data_dir: Path,
                scenario: Callable[[Engine, VirtualTimeLoop], Awaitable[Any]],
                transport: ClockedTransport | None = None) -> Any:
    """Run ``scenario(engine, loop)`` on a fresh engine (W&B only) on a virtual clock."""
    loop = VirtualTimeLoop()
    transport = transport or ClockedTransport(fake)
    transport.clock = loop.time
    return run_on_virtual_clock(
        get_plugin_manager(), "wandb", data_dir, scenario, loop=loop,
        credentials={"api_key": fake.api_key},
        settings={"transport": transport, "base_url": fake.base_url})


async def log_rows(engine: Engine, run: str, start: int, stop: int) -> None:
    """Log ``{"i": k}`` at step ``k`` for ``start <= k < stop``, a virtual second per 50."""
    for k in range(start, stop):
        engine.log(run, {"i": k}, k)
        if k % 50 == 49:
            await asyncio.sleep(1.0)


def assert_exactly_once_in_order(fake: FakeWandB, run: str, count: int) -> None:
    rows = fake.history(fake.entity, PROJECT, run)
    assert [row["i"] for row in rows] == list(range(count)), \
        f"{len(rows)} rows stored for {count} logged"
    assert [row["_step"] for row in rows] == list(range(count))


async def deliver_all(engine: Engine, run: str, count: int) -> trackmux.DeliveryReport:
    """Log ``count`` rows, flush, finish; return the final report."""
    await log_rows(engine, run, 0, count)
    report = await engine.flush()
    assert report.delivered, str(report)
    return await engine.finish(run, JobStatus.FINISHED, None)


@pytest.fixture
def fake() -> FakeWandB:
    return FakeWandB()


@pytest.mark.parametrize("code", [500, 502, 503])
def test_a_burst_of_server_errors_is_retried_without_loss_or_duplicates(
        fake: FakeWandB, tmp_path: Path, code: int) -> None:
    """Five 5xx in a row on file_stream (some after the server applied the request)."""

    async def scenario(engine: Engine, loop: VirtualTimeLoop) -> trackmux.DeliveryReport:
        run = await engine.submit(TrainingConfig(project_name=PROJECT), "burst001")
        fake.inject(Status(code), count=3, match="file_stream")
        fake.inject(AfterApply(Status(code)), count=2, match="file_stream")
        return await deliver_all(engine, run, ROWS)

    report = run_virtual(fake, tmp_path, scenario)
    assert report.delivered
    assert fake.pending_faults == 0
    assert_exactly_once_in_order(fake, "burst001", ROWS)
    assert fake.run(fake.entity, PROJECT, "burst001").state == "finished"


def test_429_with_retry_after_seconds_is_honoured(fake: FakeWandB, tmp_path: Path) -> None:
    """After a 429 with ``Retry-After: 120`` the next file_stream comes 120 s later, not sooner."""
    transport = ClockedTransport(fake)

    async def scenario(engine: Engine, loop: VirtualTimeLoop) -> None:
        run = await engine.submit(TrainingConfig(project_name=PROJECT), "rate0001")
        fake.inject(Status(429, retry_after=120), match="file_stream")
        await deliver_all(engine, run, ROWS)

    run_virtual(fake, tmp_path, scenario, transport)
    times = transport.file_stream_times()
    assert times[1] - times[0] >= 120.0, times[:3]
    assert_exactly_once_in_order(fake, "rate0001", ROWS)


def test_429_with_retry_after_http_date_is_honoured(fake: FakeWandB, tmp_path: Path) -> None:
    """``Retry-After`` as an HTTP date (the plugin measures it against wall time).

    The date is 300 s ahead of ``time.time()``; HTTP dates have whole seconds and a little
    wall time passes before the plugin parses it, so at least 298 virtual seconds must pass.
    """
    transport = ClockedTransport(fake)

    async def scenario(engine: Engine, loop: VirtualTimeLoop) -> None:
        run = await engine.submit(TrainingConfig(project_name=PROJECT), "date0001")
        when = email.utils.formatdate(time.time() + 300, usegmt=True)
        fake.inject(Status(429, retry_after=when), match="file_stream")
        await deliver_all(engine, run, ROWS)

    run_virtual(fake, tmp_path, scenario, transport)
    times = transport.file_stream_times()
    assert times[1] - times[0] >= 298.0, times[:3]
    assert times[1] - times[0] <= 302.0, times[:3]
    assert_exactly_once_in_order(fake, "date0001", ROWS)


@pytest.mark.parametrize("fault", [Timeout(), AfterApply(Timeout())], ids=["before", "after-apply"])
def test_read_timeouts_are_retried(fake: FakeWandB, tmp_path: Path, fault: Any) -> None:
    """Read timeouts (before or after the server stored the lines) lose and duplicate nothing."""

    async def scenario(engine: Engine, loop: VirtualTimeLoop) -> None:
        run = await engine.submit(TrainingConfig(project_name=PROJECT), "tout0001")
        fake.inject(fault, count=4, match="file_stream")
        await deliver_all(engine, run, ROWS)

    run_virtual(fake, tmp_path, scenario)
    assert fake.pending_faults == 0
    assert_exactly_once_in_order(fake, "tout0001", ROWS)


@pytest.mark.parametrize("fault", [Drop(), AfterApply(Drop())], ids=["before", "after-apply"])
def test_dropped_connections_are_retried(fake: FakeWandB, tmp_path: Path, fault: Any) -> None:
    """Connections closed without an answer, on file_stream and on GraphQL."""

    async def scenario(engine: Engine, loop: VirtualTimeLoop) -> None:
        fake.inject(fault, count=2, match="UpsertBucket")
        run = await engine.submit(TrainingConfig(project_name=PROJECT), "drop0001")
        fake.inject(fault, count=4, match="file_stream")
        await deliver_all(engine, run, ROWS)

    run_virtual(fake, tmp_path, scenario)
    assert fake.pending_faults == 0
    assert_exactly_once_in_order(fake, "drop0001", ROWS)
    assert len(fake.runs(fake.entity, PROJECT)) == 1


def test_413_splits_the_batch_and_resends(tmp_path: Path) -> None:
    """A server whose file_stream limit is far below one batch: the plugin halves until it fits."""
    fake = FakeWandB(max_file_stream_bytes=4_000)

    async def scenario(engine: Engine, loop: VirtualTimeLoop) -> None:
        run = await engine.submit(TrainingConfig(project_name=PROJECT), "big00001")
        await deliver_all(engine, run, ROWS)

    run_virtual(fake, tmp_path, scenario)
    statuses = [r.status for r in fake.requests if r.operation == "file_stream"]
    assert 413 in statuses
    assert_exactly_once_in_order(fake, "big00001", ROWS)


def test_an_injected_413_splits_and_resends(fake: FakeWandB, tmp_path: Path) -> None:
    """One 413 on a batch: the two halves go out, nothing twice."""

    async def scenario(engine: Engine, loop: VirtualTimeLoop) -> None:
        run = await engine.submit(TrainingConfig(project_name=PROJECT), "big00002")
        fake.inject(Status(413), count=2, match="file_stream")
        await deliver_all(engine, run, ROWS)

    run_virtual(fake, tmp_path, scenario)
    assert fake.pending_faults == 0
    assert_exactly_once_in_order(fake, "big00002", ROWS)


def test_a_key_revoked_mid_run_stops_the_tracker_and_sync_finishes_the_job(
        fake: FakeWandB, tmp_path: Path) -> None:
    """401 in the middle of a run: the tracker stops with a clear error, nothing is lost,
    and ``trackmux.sync`` with a valid key delivers the rest and finishes the run."""

    async def scenario(engine: Engine, loop: VirtualTimeLoop) -> trackmux.DeliveryReport:
        run = await engine.submit(TrainingConfig(project_name=PROJECT), "auth0001")
        await log_rows(engine, run, 0, 100)
        assert (await engine.flush()).delivered
        fake.revoke_key()
        await log_rows(engine, run, 100, ROWS)
        report = await engine.flush(timeout=60)
        await engine.finish(run, JobStatus.FINISHED, timeout=60)
        return report

    report = run_virtual(fake, tmp_path, scenario)
    (status,) = report.trackers
    assert status.state == "failed"
    assert status.pending == ROWS - 100
    assert status.error is not None and "401" in status.error
    assert len(fake.history(fake.entity, PROJECT, "auth0001")) == 100

    new_key = "fake_wandb_api_key_" + "1" * 21
    fake.add_api_key(new_key, entity=fake.entity)
    synced = trackmux.sync(
        tracker="wandb", data_dir=tmp_path, credentials={"api_key": new_key},
        settings={"wandb": {"transport": fake.transport(), "base_url": fake.base_url}})
    assert synced.ok, synced
    (outcome,) = synced.runs
    assert (outcome.run_id, outcome.already, outcome.delivered, outcome.total) == \
        ("auth0001", 100, ROWS - 100, ROWS)
    assert_exactly_once_in_order(fake, "auth0001", ROWS)
    assert fake.run(fake.entity, PROJECT, "auth0001").state == "finished"


def test_an_outage_longer_than_the_delivery_deadline_drops_nothing(
        fake: FakeWandB, tmp_path: Path) -> None:
    """Ten virtual minutes of 503: records wait (pending, behind_seconds growing), then arrive."""
    observed: list[tuple[float, int, float, str]] = []

    async def scenario(engine: Engine, loop: VirtualTimeLoop) -> trackmux.DeliveryReport:
        run = await engine.submit(TrainingConfig(project_name=PROJECT), "down0001")
        await log_rows(engine, run, 0, 100)
        assert (await engine.flush()).delivered
        fake.outage(True)
        start = loop.time()
        await log_rows(engine, run, 100, ROWS)
        for _ in range(10):
            await asyncio.sleep(60.0)
            (status,) = engine.report().trackers
            observed.append((loop.time() - start, status.pending, status.behind_seconds,
                             status.state))
        fake.outage(False)
        report = await engine.flush(timeout=60)
        assert report.delivered, str(report)
        return await engine.finish(run, JobStatus.FINISHED, None)

    report = run_virtual(fake, tmp_path, scenario)
    assert report.delivered
    assert all(pending == ROWS - 100 for _, pending, _, _ in observed), observed
    assert all(state == "retrying" for *_, state in observed), observed
    behind = [seconds for _, _, seconds, _ in observed]
    assert behind == sorted(behind) and behind[-1] > behind[0], behind
    assert behind[-1] >= 590.0, behind
    assert_exactly_once_in_order(fake, "down0001", ROWS)
    assert fake.run(fake.entity, PROJECT, "down0001").state == "finished"


def test_close_while_retrying_returns_and_keeps_everything(fake: FakeWandB, tmp_path: Path) -> None:
    """``close(0)`` during a retry wait (backend down) ends the worker at once.

    Regression: ``close()`` sets the worker's wake event and cancels it in the same loop
    iteration; ``asyncio.wait_for`` (Python 3.11) then returned the event instead of raising
    CancelledError, and the stopping worker went on retrying for as long as the outage lasted.
    """

    async def scenario(engine: Engine, loop: VirtualTimeLoop) -> tuple[float, Any]:
        run = await engine.submit(TrainingConfig(project_name=PROJECT), "stop0001")
        fake.outage(True)
        await log_rows(engine, run, 0, 100)
        await asyncio.sleep(30.0)  # the worker is now waiting to retry
        start = loop.time()
        report = await asyncio.wait_for(engine.close(0), 3600)
        return loop.time() - start, report

    async def nothing_more(engine: Engine, loop: VirtualTimeLoop) -> None:
        return None

    pm = get_plugin_manager()
    loop = VirtualTimeLoop()
    transport = ClockedTransport(fake)
    transport.clock = loop.time

    async def main() -> tuple[float, Any]:
        engine = Engine(pm, [tracker_caller(pm, "wandb")], tmp_path,
                        tracker_settings={"wandb": {"transport": transport,
                                                    "base_url": fake.base_url}},
                        blocking="inline", backoff=Backoff(rng=random.Random(0)))
        await engine.start({"api_key": fake.api_key})
        return await scenario(engine, loop)

    try:
        took, report = loop.run_until_complete(main())
    finally:
        loop.close()
    assert took < 1.0, f"close(0) took {took} virtual seconds"
    assert report.trackers[0].pending == 100
    fake.outage(False)
    synced = trackmux.sync(tracker="wandb", data_dir=tmp_path,
                           credentials={"api_key": fake.api_key},
                           settings={"wandb": {"transport": fake.transport(),
                                               "base_url": fake.base_url}})
    assert synced.ok, synced
    assert_exactly_once_in_order(fake, "stop0001", 100)


@pytest.mark.timeout(60)
def test_disconnect_returns_within_its_timeout_while_the_backend_is_down(
        fake: FakeWandB, tmp_path: Path) -> None:
    """Through ``Tracker`` (real threads): ``disconnect(timeout=1)`` with W&B down returns."""
    import threading

    tracker = trackmux.Tracker(["wandb"], data_dir=tmp_path, settings={
        "wandb": {"transport": fake.transport(), "base_url": fake.base_url}})
    tracker.connect({"api_key": fake.api_key})
    run = tracker.submit_job(project_name=PROJECT, run_id="stop0002")
    fake.outage(True)
    for k in range(100):
        tracker.log_metrics(run, {"i": k}, step=k)
    reports: list[Any] = []
    closer = threading.Thread(target=lambda: reports.append(tracker.disconnect(timeout=1)),
                              daemon=True)
    closer.start()
    closer.join(20)
    returned = not closer.is_alive()
    fake.outage(False)  # lets a stuck worker finish, so the thread does not outlive the test
    closer.join(20)
    assert returned, "disconnect(timeout=1) did not return within 20 s while W&B was down"
    assert reports[0].trackers[0].pending == 100


class StoredTimes(ClockedTransport):
    """Notes the virtual time at which each row of ``run`` is first stored by the fake."""

    def __init__(self, fake: FakeWandB, run: str) -> None:
        super().__init__(fake)
        self.fake, self.run = fake, run
        self.stored: list[float] = []  # stored[i]: when row i reached the server

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        finally:
            if request.url.path.endswith("/file_stream"):
                held = len(self.fake.history(self.fake.entity, PROJECT, self.run))
                self.stored.extend([self.clock()] * (held - len(self.stored)))


def inject_issue_burst(fake: FakeWandB) -> None:
    """The burst of issue 15: 3 x 503, 2 x 429 (Retry-After 1), 2 answers lost after the
    server stored the rows, 1 connection dropped, in that order, on file_stream."""
    fake.inject(Status(503), count=3, match="file_stream")
    fake.inject(Status(429, retry_after=1), count=2, match="file_stream")
    fake.inject(AfterApply(Timeout()), count=2, match="file_stream")
    fake.inject(Drop(), count=1, match="file_stream")


def test_the_fault_burst_delivers_every_row_within_30_seconds(
        fake: FakeWandB, tmp_path: Path) -> None:
    """Rows logged at 10 per virtual second for a minute; the burst starts at t=20 s.

    Every row reaches the server within 30 s of being logged, exactly once and in order.
    Regression: a retry resent only the failed batch, and the rows logged during the burst
    then waited another ``min_batch_interval`` (5 s) after the successful resend.
    """
    run_id = "lat00001"
    transport = StoredTimes(fake, run_id)
    logged: list[float] = []

    async def scenario(engine: Engine, loop: VirtualTimeLoop) -> None:
        run = await engine.submit(TrainingConfig(project_name=PROJECT), run_id)
        for k in range(600):
            if k == 200:
                inject_issue_burst(fake)
            logged.append(loop.time())
            engine.log(run, {"i": k}, k)
            await asyncio.sleep(0.1)
        await asyncio.sleep(60.0)  # no flush: intervals and retries must deliver
        assert fake.pending_faults == 0
        await engine.finish(run, JobStatus.FINISHED, None)

    run_virtual(fake, tmp_path, scenario, transport)
    assert_exactly_once_in_order(fake, run_id, 600)
    latency = [stored - at for stored, at in zip(transport.stored, logged, strict=True)]
    worst = max(range(600), key=latency.__getitem__)
    assert latency[worst] <= 30.0, f"row {worst} took {latency[worst]:.2f} s"
