"""Artifacts are never lost either: journaled, copied, delivered in the background, synced.

* A 503 outage during ``upload_artifact``: the call returns at once, training goes on, the
  artifact arrives after the outage.
* The file deleted or overwritten in place right after the call: what arrives is the
  original; ``copy=False`` fails that artifact clearly instead.
* A permanent refusal: in ``status()``, the reports and one log line; never an exception
  in the loop (unless ``wait=True``), never a FAILED run.
* An offline W&B run, and a process SIGKILLed right after ``upload_artifact`` returned:
  ``trackmux sync --tracker wandb`` commits the artifact with identical bytes, once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trackmux
from click.testing import CliRunner
from trackmux import _cli
from trackmux_wandb.testing import FakeWandB, Status

PROJECT = "artifacts"

pytestmark = pytest.mark.usefixtures("isolated_env")


def b64_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def wandb_tracker(fake: FakeWandB, data_dir: Path, trackers: tuple[str, ...] = ("wandb",)
                  ) -> trackmux.Tracker:
    tracker = trackmux.Tracker(
        list(trackers), data_dir=data_dir,
        settings={"wandb": {"transport": fake.transport(), "base_url": fake.base_url}})
    tracker.connect({"wandb": {"api_key": fake.api_key}, **{t: {} for t in trackers
                                                            if t != "wandb"}})
    return tracker


def two_files(root: Path) -> dict[str, bytes]:
    """A checkpoint directory of two files; returns their contents by relative path."""
    contents = {"model.pt": os.urandom(300_000), "sub/config.json": b'{"rank": 16}'}
    for rel, data in contents.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return contents


def committed(fake: FakeWandB, collection: str) -> list[Any]:
    return [a for a in fake.artifacts(collection=collection) if a.state == "COMMITTED"]


def assert_on_wandb(fake: FakeWandB, collection: str, contents: dict[str, bytes]) -> None:
    """Exactly one committed version, whose files are ``contents`` byte for byte."""
    (artifact,) = committed(fake, collection)
    assert set(artifact.manifest["contents"]) == set(contents)
    blobs = fake.blobs
    for rel, data in contents.items():
        assert blobs[artifact.manifest["contents"][rel]["digest"]] == data, rel


# -- outages and refusals ---------------------------------------------------------------------


def test_a_503_outage_during_upload_artifact_holds_neither_the_call_nor_the_loop(
        tmp_path: Path) -> None:
    """Every W&B request fails with 503 for a while: the call returns with the artifact
    still undelivered, logging goes on, and the artifact arrives once W&B is back."""
    fake = FakeWandB()
    tracker = wandb_tracker(fake, tmp_path / "data")
    with tracker:
        run = tracker.submit_job(project_name=PROJECT)
        for step in range(50):
            tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
        contents = two_files(tmp_path / "ckpt")
        fake.inject(Status(503), count=3)
        artifact_id = tracker.upload_artifact(tmp_path / "ckpt", {"name": "ckpt", "type": "model"})
        assert artifact_id == f"{run}:ckpt:0"
        assert committed(fake, "ckpt") == []  # the outage is still on: nothing arrived yet
        for step in range(50, 100):
            tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
        report = tracker.finish(run)
    assert report.delivered, report
    assert fake.pending_faults == 0
    assert_on_wandb(fake, "ckpt", contents)
    assert len(fake.history(fake.entity, PROJECT, run)) == 100
    assert fake.run(fake.entity, PROJECT, run).state == "finished"


def test_the_file_overwritten_or_deleted_right_after_the_call_arrives_as_it_was(
        tmp_path: Path) -> None:
    """The bytes are safe once the call returns: W&B (down at the call) and the offline
    tracker both get the original content."""
    fake = FakeWandB()
    tracker = wandb_tracker(fake, tmp_path / "data", ("wandb", "null"))
    with tracker:
        tracker.submit_job(project_name=PROJECT)
        contents = two_files(tmp_path / "ckpt")
        fake.inject(Status(503), count=3, match="graphql")
        artifact_id = tracker.upload_artifact(tmp_path / "ckpt", {"name": "ckpt"})
        with open(tmp_path / "ckpt" / "model.pt", "r+b") as handle:  # in place: same inode
            handle.write(b"\xff" * 1000)
        (tmp_path / "ckpt" / "sub" / "config.json").unlink()
        assert tracker.flush(timeout=60).delivered
        out = tracker.download_artifact(artifact_id, tmp_path / "out", tracker="null")
        assert out == (tmp_path / "out").resolve()
        assert {rel: (out / rel).read_bytes() for rel in contents} == contents
    assert_on_wandb(fake, "ckpt", contents)


def test_copy_false_fails_that_artifact_clearly_when_the_file_changed(tmp_path: Path) -> None:
    """A reference is checked by SHA-256 before each upload: a file changed after the call
    is refused, never uploaded under the recorded digest; an unchanged one is uploaded."""
    fake = FakeWandB()
    big, kept = tmp_path / "huge.bin", tmp_path / "kept.bin"
    big.write_bytes(b"original" * 1000)
    kept.write_bytes(b"kept" * 1000)
    tracker = wandb_tracker(fake, tmp_path / "data")
    with tracker:
        tracker.submit_job(project_name=PROJECT)
        fake.inject(Status(503), count=2, match="CreateArtifact")
        artifact_id = tracker.upload_artifact(big, {"name": "huge"}, copy=False)
        big.write_bytes(b"changed!" * 1000)
        tracker.upload_artifact(kept, {"name": "kept"}, copy=False)
        report = tracker.flush(timeout=30)
    (status,) = report.trackers
    assert status.artifacts_pending == 1
    (error,) = status.artifact_errors
    assert error.startswith(f"{artifact_id}: ArtifactChangedError:") and "huge.bin" in error
    assert "changed after upload_artifact" in error
    assert committed(fake, "huge") == []
    assert_on_wandb(fake, "kept", {"kept.bin": b"kept" * 1000})


def test_a_permanent_refusal_is_reported_never_raised_and_the_run_is_not_failed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """W&B refuses the commit (403): status(), finish()'s report and one ERROR line say so;
    metrics keep flowing; the run ends finished; wait=True raises RuntimeError."""
    caplog.set_level(logging.INFO, logger="trackmux")
    fake = FakeWandB()
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"w" * 1000)
    tracker = wandb_tracker(fake, tmp_path / "data")
    with tracker:
        run = tracker.submit_job(project_name=PROJECT)
        fake.inject(Status(403), match="CommitArtifact")
        artifact_id = tracker.upload_artifact(weights, {"name": "weights"})
        for step in range(30):
            tracker.log_metrics(run, {"loss": 1.0}, step=step)
        flushed = tracker.flush(timeout=30)
        fake.inject(Status(403), match="CommitArtifact")
        with pytest.raises(RuntimeError, match=r"wandb: PermanentError: commitArtifact failed"):
            tracker.upload_artifact(tmp_path / "weights.bin", {"name": "second"}, wait=True)
        status = tracker.status()
        report = tracker.finish(run)
    for shown in (flushed, status, report):
        assert not shown.delivered
        assert any(e.startswith(f"{artifact_id}: PermanentError: commitArtifact failed")
                   for e in shown.trackers[0].artifact_errors), shown
    assert "artifact" in str(report) and "commitArtifact failed" in str(report)
    refusals = [r for r in caplog.records
                if r.levelno == logging.ERROR and artifact_id in r.getMessage()]
    assert len(refusals) == 1 and "trackmux sync" in refusals[0].getMessage()
    assert fake.run(fake.entity, PROJECT, run).state == "finished"
    assert len(fake.history(fake.entity, PROJECT, run)) == 30


# -- offline, crash, sync -----------------------------------------------------------------------


def invoke(data_dir: Path, *args: str, env: dict[str, str]) -> Any:
    runner = CliRunner(env={"TRACKMUX_DIR": str(data_dir), "COLUMNS": "200", **env})
    return runner.invoke(_cli.cli, list(args), catch_exceptions=False)


@pytest.mark.slow
def test_an_offline_wandb_run_syncs_its_artifact_once(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """WANDB_MODE=offline: the run and its 2-file artifact stay in the journal; `trackmux
    sync --tracker wandb` commits the artifact with identical bytes; a second sync
    changes nothing."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("WANDB_MODE", "offline")
    with trackmux.Tracker(["wandb", "null"], data_dir=data_dir) as tracker:
        assert tracker.trackers == ("null",)
        run = tracker.submit_job(project_name=PROJECT)
        for step in range(20):
            tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
        contents = two_files(tmp_path / "ckpt")
        tracker.upload_artifact(tmp_path / "ckpt", {"name": "ckpt", "type": "model"})
    monkeypatch.delenv("WANDB_MODE")
    fake = FakeWandB()
    with fake.serve() as url:
        env = {"WANDB_BASE_URL": url, "WANDB_API_KEY": fake.api_key}
        first = invoke(data_dir, "sync", "--tracker", "wandb", "--yes", env=env)
        assert first.exit_code == 0, first.output
        assert f"{run}: synced, 20 records sent" in first.output
        assert "1 artifact(s) sent" in first.output
        assert_on_wandb(fake, "ckpt", contents)
        fake.clear_requests()
        again = invoke(data_dir, "sync", "--tracker", "wandb", env=env)
        named = invoke(data_dir, "sync", run, "--tracker", "wandb", env=env)
    assert again.exit_code == 0 and "Nothing to sync" in again.output, again.output
    assert named.exit_code == 0 and f"{run}: up to date" in named.output, named.output
    assert "CreateArtifact" not in [r.operation for r in fake.requests]
    assert_on_wandb(fake, "ckpt", contents)
    assert fake.run(fake.entity, PROJECT, run).state == "finished"


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import trackmux

    data_dir, ckpt = Path(sys.argv[1]), Path(sys.argv[2])
    tracker = trackmux.Tracker(["null"], data_dir=data_dir)
    run = tracker.submit_job(project_name="artifacts", run_id="killed01")
    for step in range(40):
        tracker.log_metrics(run, {"i": step}, step=step)
    tracker.upload_artifact(ckpt, {"name": "ckpt", "type": "model"})
    for path in ckpt.rglob("*"):       # the script moves on: the checkpoint is overwritten
        if path.is_file():
            path.write_bytes(b"next epoch")
    print("uploaded", flush=True)
    time.sleep(60)
""")


def test_sigkill_right_after_upload_artifact_then_sync_delivers_it_intact(
        tmp_path: Path) -> None:
    """The process dies right after the call returned (and overwrote its files): the
    journal still has the artifact, and sync commits the original bytes to W&B."""
    data_dir = tmp_path / "data"
    contents = two_files(tmp_path / "ckpt")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    with subprocess.Popen([sys.executable, str(script), str(data_dir), str(tmp_path / "ckpt")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        try:
            line = child.stdout.readline()  # type: ignore[union-attr]
            assert line == "uploaded\n", line + child.stderr.read()  # type: ignore[union-attr]
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.communicate()
    assert child.returncode == -signal.SIGKILL
    assert (tmp_path / "ckpt" / "model.pt").read_bytes() == b"next epoch"

    fake = FakeWandB()
    settings = {"wandb": {"transport": fake.transport(), "base_url": fake.base_url}}
    report = trackmux.sync(tracker="wandb", data_dir=data_dir,
                           credentials={"api_key": fake.api_key}, settings=settings)
    assert report.ok, report
    (outcome,) = report.runs
    assert (outcome.run_id, outcome.artifacts_delivered, outcome.artifacts_pending) == (
        "killed01", 1, 0)
    assert_on_wandb(fake, "ckpt", contents)
    again = trackmux.sync(["killed01"], tracker="wandb", data_dir=data_dir,
                          credentials={"api_key": fake.api_key}, settings=settings)
    assert again.runs[0].state == "up to date" and again.runs[0].artifacts_delivered == 0
    assert_on_wandb(fake, "ckpt", contents)


# -- the read side ------------------------------------------------------------------------------


def test_show_and_list_artifacts_give_size_digest_and_delivery_per_tracker(
        tmp_path: Path) -> None:
    """W&B refuses the artifact, the offline tracker holds it: list_artifacts, `trackmux
    show` and `show --json` say so per tracker, with size and SHA-256."""
    data_dir = tmp_path / "data"
    fake = FakeWandB()
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"w" * 1500)
    tracker = wandb_tracker(fake, data_dir, ("wandb", "null"))
    with tracker:
        run = tracker.submit_job(project_name=PROJECT)
        fake.inject(Status(403), match="CommitArtifact")
        artifact_id = tracker.upload_artifact(weights, {"name": "weights", "type": "model"})
        tracker.flush(timeout=30)
        (listed,) = tracker.list_artifacts(run)
    digest = hashlib.sha256(f"weights.bin:{hashlib.sha256(b'w' * 1500).hexdigest()}\n"
                            .encode()).hexdigest()
    assert (listed["id"], listed["size"], listed["digest"]) == (artifact_id, 1500, digest)
    assert listed["files"] == [{"path": "weights.bin", "size": 1500,
                                "sha256": hashlib.sha256(b"w" * 1500).hexdigest()}]
    assert listed["delivery"]["null"]["state"] == "delivered"
    assert listed["delivery"]["wandb"]["state"] == "refused"
    assert "commitArtifact failed" in listed["delivery"]["wandb"]["error"]

    shown = invoke(data_dir, "show", run, env={})
    assert shown.exit_code == 0, shown.output
    (row,) = [line for line in shown.output.splitlines() if "weights:0" in line]
    assert "model" in row and "1.5 kB" in row and digest[:12] in row
    (header,) = [line for line in shown.output.splitlines() if "SHA-256" in line]
    cells = [c.strip() for c in header.split("┃")], [c.strip() for c in row.split("│")]
    assert cells[1][cells[0].index("wandb")] == "pending"
    assert cells[1][cells[0].index("null")] == "delivered"
    as_json = json.loads(invoke(data_dir, "show", run, "--json", env={}).output)
    (artifact,) = as_json["artifacts"]
    assert artifact["digest"] == digest and artifact["delivery"]["wandb"] == {"state": "pending"}
    assert artifact["delivery"]["null"]["state"] == "delivered"


def test_artifacts_download_verifies_what_it_writes(tmp_path: Path) -> None:
    """`trackmux artifacts download RUN NAME -o DIR` writes the original bytes from the
    local store (or through a tracker); a tampered store fails the check, writing nothing."""
    data_dir = tmp_path / "data"
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        run = tracker.submit_job(project_name=PROJECT)
        contents = two_files(tmp_path / "ckpt")
        tracker.upload_artifact(tmp_path / "ckpt", {"name": "ckpt"})
    for path in (tmp_path / "ckpt").rglob("*"):
        if path.is_file():
            path.unlink()

    local = invoke(data_dir, "artifacts", "download", run, "ckpt", "-o", str(tmp_path / "a"),
                   env={})
    through = invoke(data_dir, "artifacts", "download", run, f"{run}:ckpt:0", "-o",
                     str(tmp_path / "b"), "--tracker", "null", env={})
    for result, folder in ((local, "a"), (through, "b")):
        assert result.exit_code == 0 and "verified" in result.output, result.output
        assert {p.relative_to(tmp_path / folder).as_posix(): p.read_bytes()
                for p in (tmp_path / folder).rglob("*") if p.is_file()} == contents

    blob = data_dir / "artifacts" / "sha256"
    (model,) = [p for p in blob.rglob("*") if p.is_file() and p.stat().st_size == 300_000]
    model.write_bytes(b"\x00" * 300_000)
    tampered = invoke(data_dir, "artifacts", "download", run, "ckpt", "-o",
                      str(tmp_path / "c"), env={})
    assert tampered.exit_code == 1 and "model.pt" in tampered.output
    assert "fails its check" in tampered.output
    assert not (tmp_path / "c" / "model.pt").exists()
    missing = invoke(data_dir, "artifacts", "download", run, "nope", env={})
    assert missing.exit_code == 1 and "no artifact 'nope'" in missing.output


@pytest.fixture
def small_fs(mount_tmpfs: Callable[[str], Path]) -> Path:
    """A real 2 MiB tmpfs (see ``mount_tmpfs`` in conftest.py)."""
    return mount_tmpfs("2m")


def test_a_full_disk_at_the_call_raises_there_and_loses_nothing_accepted(
        tmp_path: Path, small_fs: Path) -> None:
    """The data directory's disk cannot hold the copy: upload_artifact raises OSError (the
    bytes are not safe, so the caller must know), records nothing and leaves no partial
    copy; the run, its records and a later artifact that fits are unaffected."""
    big, small = tmp_path / "big.bin", tmp_path / "small.bin"
    big.write_bytes(os.urandom(4_000_000))
    small.write_bytes(b"s" * 10_000)
    with trackmux.Tracker(["null"], data_dir=small_fs) as tracker:
        run = tracker.submit_job(project_name=PROJECT)
        tracker.log_metrics(run, {"loss": 1.0}, step=0)
        with pytest.raises(OSError, match="No space left"):
            tracker.upload_artifact(big, {"name": "big"})
        assert tracker.list_artifacts(run) == []
        assert list((small_fs / "artifacts" / "tmp").iterdir()) == []
        tracker.log_metrics(run, {"loss": 0.5}, step=1)
        artifact_id = tracker.upload_artifact(small, {"name": "small"})
        report = tracker.finish(run)
        assert report.delivered, report
        assert [a["id"] for a in tracker.list_artifacts(run)] == [artifact_id]
        assert [row["loss"] for row in tracker.get_history(run)] == [1.0, 0.5]


def test_wandb_connector_keeps_the_reference_shape_and_its_runtime_error_with_wait(
        tmp_path: Path) -> None:
    """WandBConnector.upload_artifact returns the artifact id at once (the reference's
    shape); with wait=True a permanent refusal is the reference's RuntimeError."""
    import asyncio

    from trackmux_wandb import WandBConnector

    fake = FakeWandB()
    weights = tmp_path / "adapter.safetensors"
    weights.write_bytes(b"lora" * 1000)

    async def example() -> tuple[str, str]:
        connector = WandBConnector(data_dir=tmp_path / "data", settings={
            "wandb": {"transport": fake.transport(), "base_url": fake.base_url}})
        await connector.connect({"api_key": fake.api_key})
        job_id = await connector.submit_job(trackmux.TrainingConfig(project_name=PROJECT))
        artifact_id = await connector.upload_artifact(
            path=str(weights), metadata={"job_id": job_id, "name": "adapter", "type": "model"})
        await connector.flush()
        fake.inject(Status(403), match="CommitArtifact")
        try:
            await connector.upload_artifact(str(weights), {"job_id": job_id, "name": "other"},
                                            wait=True)
        except RuntimeError as e:
            message = str(e)
        else:
            raise AssertionError("wait=True must raise the refusal")
        await connector.disconnect()
        return artifact_id, message

    artifact_id, message = asyncio.run(example())
    assert artifact_id.endswith(":adapter:0")
    assert "wandb: PermanentError: commitArtifact failed" in message
    assert [a.state for a in fake.artifacts(collection="adapter")] == ["COMMITTED"]
