"""Tests of the offline tracker ``trackmux_null``, calling its hooks directly."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pluggy
import pytest
import trackmux_null as null
from hypothesis import given, settings
from hypothesis import strategies as st
from trackmux_spec import (
    ArtifactSpec,
    ConnectContext,
    JobStatus,
    MetricRecord,
    PermanentError,
    RetryableError,
    TrackerClosedError,
    TrainingConfig,
    UnknownJobError,
    hookspecs,
)
from trackmux_spec.framing import HEADER, encode_frame, iter_frames


def rec(seq: int, **values: float) -> MetricRecord:
    """Record ``seq`` with step ``10 * seq``; ``loss`` defaults to ``seq``."""
    return MetricRecord(
        seq=seq,
        step=10 * seq,
        timestamp=1_700_000_000.0 + seq,
        values=values or {"loss": float(seq)},
    )


def recs(start: int, stop: int) -> list[MetricRecord]:
    return [rec(seq) for seq in range(start, stop)]


CONFIG = TrainingConfig(
    name="baseline",
    base_model="tiny",
    learning_rate=1e-3,
    tags=["a"],
    extra={"warmup": 10},
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "null"


@pytest.fixture
def session(data_dir: Path) -> Iterator[null.NullSession]:
    s = null.connect({}, ConnectContext(data_dir=data_dir))
    yield s
    null.disconnect(s)


@pytest.fixture
def job(session: null.NullSession) -> str:
    return null.submit_job(session, "run00001", CONFIG)


def history_seqs(session: null.NullSession, job_id: str) -> list[int]:
    path = session.root / "runs" / job_id / "history.tmf"
    if not path.exists():
        return []
    with path.open("rb") as handle:
        return [row["_seq"] for _, _, _, rows in iter_frames(handle) for row in rows]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- declaration and lifecycle ---------------------------------------------------


def test_tracker_info() -> None:
    info = null.tracker_info()
    assert info.max_batch_records == 20_000
    assert info.min_batch_interval == 0.0
    assert info.capabilities == {"artifacts", "compare", "history"}


def test_hooks_register_against_the_spec(data_dir: Path) -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(null, name="null")
    pm.check_pending()
    names = {
        impl.function.__name__
        for caller in pm.get_hookcallers(null) or []
        for impl in caller.get_hookimpls()
    }
    spec_names = {
        name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "trackmux_spec")
    }
    assert names == spec_names
    s = pm.hook.connect(credentials={}, context=ConnectContext(data_dir=data_dir))
    assert pm.hook.submit_job(session=s, run_id="viapm", config=CONFIG) == "viapm"
    pm.hook.disconnect(session=s)


def test_connect_creates_private_dir_and_ignores_credentials(data_dir: Path) -> None:
    s = null.connect({"api_key": "ignored"}, ConnectContext(data_dir=data_dir))
    assert data_dir.is_dir()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(data_dir.parent.stat().st_mode) == 0o700
    assert s.root == data_dir.resolve()
    null.disconnect(s)


def test_calls_after_disconnect_raise(session: null.NullSession, job: str) -> None:
    null.log_metrics(session, job, recs(0, 2))
    null.disconnect(session)
    null.disconnect(session)
    with pytest.raises(TrackerClosedError):
        null.log_metrics(session, job, recs(2, 3))
    with pytest.raises(TrackerClosedError):
        null.get_history(session, job)


# -- runs --------------------------------------------------------------------------


def test_submit_job_writes_meta(session: null.NullSession, job: str) -> None:
    assert job == "run00001"
    meta = json.loads((session.root / "runs" / job / "meta.json").read_text())
    assert meta["run_id"] == job
    assert meta["name"] == "baseline"
    assert meta["config"] == CONFIG.to_dict()
    assert meta["hyperparameters"] == CONFIG.hyperparameters()
    assert meta["state"] == "running"
    assert meta["finished"] is None
    assert meta["pid"] == os.getpid()
    assert isinstance(meta["hostname"], str)
    assert isinstance(meta["created"], float)
    assert null.get_job_status(session, job) is JobStatus.RUNNING


def test_submit_job_is_idempotent_and_resumes(session: null.NullSession, job: str) -> None:
    null.log_metrics(session, job, recs(0, 3))
    created = json.loads((session.root / "runs" / job / "meta.json").read_text())["created"]
    null.finish_job(session, job, JobStatus.FINISHED)
    assert null.submit_job(session, job, CONFIG) == job
    meta = json.loads((session.root / "runs" / job / "meta.json").read_text())
    assert meta["created"] == created
    assert meta["state"] == "running"
    assert meta["finished"] is None
    assert history_seqs(session, job) == [0, 1, 2]
    null.log_metrics(session, job, recs(2, 5))
    assert history_seqs(session, job) == [0, 1, 2, 3, 4]


def test_submit_job_rejects_unsafe_run_id(session: null.NullSession) -> None:
    for bad in ("../escape", "a/b", ".hidden", ""):
        with pytest.raises(ValueError):
            null.submit_job(session, bad, CONFIG)
    assert not (session.root.parent / "escape").exists()


def test_log_metrics_appends_rows(session: null.NullSession, job: str) -> None:
    null.log_metrics(session, job, recs(0, 3))
    null.log_metrics(session, job, [rec(3, loss=0.5, acc=0.9)])
    history = null.get_history(session, job)
    assert [row["_step"] for row in history] == [0, 10, 20, 30]
    assert history[3] == {"loss": 0.5, "acc": 0.9, "_step": 30, "_timestamp": 1_700_000_003.0}
    assert all(type(row["_step"]) is int and type(row["_timestamp"]) is float for row in history)
    assert all("_seq" not in row for row in history)
    assert history_seqs(session, job) == [0, 1, 2, 3]


def test_resent_overlapping_batch_is_not_duplicated(session: null.NullSession, job: str) -> None:
    null.log_metrics(session, job, recs(0, 5))
    null.log_metrics(session, job, recs(0, 5))
    null.log_metrics(session, job, recs(3, 8))
    null.log_metrics(session, job, recs(6, 7))
    null.log_metrics(session, job, [])
    assert history_seqs(session, job) == list(range(8))
    assert [row["loss"] for row in null.get_history(session, job)] == [float(i) for i in range(8)]


def test_stored_count_survives_a_new_session(
    data_dir: Path, session: null.NullSession, job: str
) -> None:
    null.log_metrics(session, job, recs(0, 4))
    null.disconnect(session)
    again = null.connect({}, ConnectContext(data_dir=data_dir))
    null.log_metrics(again, job, recs(2, 6))
    assert history_seqs(again, job) == list(range(6))
    null.disconnect(again)


def test_gap_is_permanent_error(session: null.NullSession, job: str) -> None:
    null.log_metrics(session, job, recs(0, 3))
    with pytest.raises(PermanentError, match=r"expected seq 3.*received seq 5"):
        null.log_metrics(session, job, recs(5, 7))
    with pytest.raises(PermanentError, match="not consecutive"):
        null.log_metrics(session, job, [rec(3), rec(5)])
    assert history_seqs(session, job) == [0, 1, 2]


def test_failed_write_is_retryable_and_recovers(
    session: null.NullSession, job: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    null.log_metrics(session, job, recs(0, 2))
    null.finish_job(session, job, JobStatus.FINISHED)
    null.submit_job(session, job, CONFIG)

    def disk_full(path: Path, flags: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(null._store, "open_private", disk_full)
    with pytest.raises(RetryableError, match="No space left"):
        null.log_metrics(session, job, recs(2, 4))
    monkeypatch.undo()
    null.log_metrics(session, job, recs(2, 4))
    assert history_seqs(session, job) == [0, 1, 2, 3]


def test_reserved_metric_name_is_permanent_error(session: null.NullSession, job: str) -> None:
    with pytest.raises(PermanentError, match="_step"):
        null.log_metrics(session, job, [rec(0, _step=1.0)])
    assert null.get_history(session, job) == []


def test_unknown_job_ids(session: null.NullSession) -> None:
    for bad in ("nosuchrun", "../etc", "a/b"):
        # the delivery hooks: permanent (no retry creates the job), naming it
        with pytest.raises(PermanentError, match="has no job") as info:
            null.log_metrics(session, bad, recs(0, 1))
        assert repr(bad) in str(info.value)
        with pytest.raises(PermanentError, match="has no job"):
            null.finish_job(session, bad, JobStatus.FINISHED)
        # the read hooks: UnknownJobError
        with pytest.raises(UnknownJobError) as unknown:
            null.get_job_status(session, bad)
        assert unknown.value.job_id == bad
        with pytest.raises(UnknownJobError):
            null.get_history(session, bad)
        with pytest.raises(UnknownJobError):
            null.upload_artifact(session, bad, Path(__file__), ArtifactSpec(name="x"))
    assert null.compare(session, ["nosuchrun"]).runs == []


_NEXT_FRAME = encode_frame([{"loss": 3.0, "_step": 30, "_timestamp": 1.0, "_seq": 3}])


@pytest.mark.parametrize(
    "tail",
    [_NEXT_FRAME[:7], _NEXT_FRAME[:-3], _NEXT_FRAME[:-1] + b"\x00"],
    ids=["partial-header", "partial-payload", "torn-payload-bytes"],
)
def test_torn_last_frame_is_truncated(
    data_dir: Path, session: null.NullSession, job: str, tail: bytes
) -> None:
    null.log_metrics(session, job, recs(0, 3))
    null.disconnect(session)
    path = data_dir / "runs" / job / "history.tmf"
    good = path.read_bytes()
    with path.open("ab") as out:
        out.write(tail)

    again = null.connect({}, ConnectContext(data_dir=data_dir))
    assert len(null.get_history(again, job)) == 3
    null.log_metrics(again, job, recs(3, 5))
    data = path.read_bytes()
    assert data.startswith(good)
    assert history_seqs(again, job) == [0, 1, 2, 3, 4]
    null.disconnect(again)


def test_corrupt_middle_frame_is_permanent_error(
    data_dir: Path, session: null.NullSession, job: str
) -> None:
    null.log_metrics(session, job, recs(0, 2))
    null.log_metrics(session, job, recs(2, 3))
    null.disconnect(session)
    path = data_dir / "runs" / job / "history.tmf"
    data = bytearray(path.read_bytes())
    data[HEADER.size + 2] ^= 0xFF  # a flipped bit in the first frame's payload
    path.write_bytes(bytes(data))
    again = null.connect({}, ConnectContext(data_dir=data_dir))
    with pytest.raises(PermanentError, match="corrupt"):
        null.log_metrics(again, job, recs(3, 4))
    null.disconnect(again)


def test_nan_and_infinity_round_trip(session: null.NullSession, job: str) -> None:
    null.log_metrics(session, job, [rec(0, a=math.nan, b=math.inf, c=-math.inf, d=1)])
    (row,) = null.get_history(session, job)
    assert math.isnan(row["a"])
    assert row["b"] == math.inf and row["c"] == -math.inf and row["d"] == 1


def test_finish_job_is_idempotent(session: null.NullSession, job: str) -> None:
    null.finish_job(session, job, JobStatus.FINISHED)
    meta_path = session.root / "runs" / job / "meta.json"
    first = json.loads(meta_path.read_text())
    assert first["state"] == "finished" and isinstance(first["finished"], float)
    null.finish_job(session, job, JobStatus.FINISHED)
    null.finish_job(session, job, JobStatus.FAILED)
    assert json.loads(meta_path.read_text()) == first
    assert null.get_job_status(session, job) is JobStatus.FINISHED
    with pytest.raises(PermanentError):
        null.finish_job(session, job, JobStatus.RUNNING)


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.KILLED, JobStatus.COMPLETED])
def test_finish_job_states(session: null.NullSession, job: str, status: JobStatus) -> None:
    null.finish_job(session, job, status)
    assert null.get_job_status(session, job) is status


@pytest.mark.slow
def test_dead_pid_is_crashed(session: null.NullSession, job: str) -> None:
    meta_path = session.root / "runs" / job / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["pid"] = dead_pid()
    meta_path.write_text(json.dumps(meta))
    assert null.get_job_status(session, job) is JobStatus.CRASHED
    assert null.compare(session, [job]).runs[0].state is JobStatus.CRASHED

    meta["hostname"] = "some-other-host"
    meta_path.write_text(json.dumps(meta))
    assert null.get_job_status(session, job) is JobStatus.RUNNING

    null.finish_job(session, job, JobStatus.FINISHED)
    assert null.get_job_status(session, job) is JobStatus.FINISHED


def test_get_run_url_is_pure(session: null.NullSession, job: str) -> None:
    assert null.get_run_url(session, job) == (session.root / "runs" / job).as_uri()
    url = null.get_run_url(session, "notcreated")
    assert url.startswith("file://") and url.endswith("/runs/notcreated")
    assert not (session.root / "runs" / "notcreated").exists()


def test_compare(session: null.NullSession, job: str) -> None:
    other = null.submit_job(session, "run00002", TrainingConfig(name="other", rank=8))
    null.log_metrics(session, job, [rec(0, loss=2.0, acc=0.1), rec(1, loss=1.0)])
    null.finish_job(session, job, JobStatus.FINISHED)
    result = null.compare(session, [job, "missing", other])
    assert result.url == (session.root / "runs").as_uri()
    first, second = result.runs
    assert first.id == job and first.name == "baseline"
    assert first.state is JobStatus.FINISHED
    assert first.config == CONFIG.hyperparameters()
    assert first.summary == {"loss": 1.0, "acc": 0.1, "_step": 10}
    assert first.url == null.get_run_url(session, job)
    assert second.id == other and second.state is JobStatus.RUNNING
    assert second.config == {"rank": 8} and second.summary == {}
    assert result.to_dict()["runs"][0]["state"] == "finished"


# -- permissions -----------------------------------------------------------------


def test_every_directory_0700_and_file_0600(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        data_dir = tmp_path / "private"
        s = null.connect({}, ConnectContext(data_dir=data_dir))
        job = null.submit_job(s, "perms", CONFIG)
        null.log_metrics(s, job, recs(0, 3))
        null.finish_job(s, job, JobStatus.FINISHED)
        tree = tmp_path / "tree"
        (tree / "sub").mkdir(parents=True)
        (tree / "a.txt").write_text("a")
        (tree / "sub" / "b.txt").write_text("b")
        null.upload_artifact(s, job, tree, ArtifactSpec(name="tree"))
        null.disconnect(s)
    finally:
        os.umask(old)
    seen = {"dirs": 0, "files": 0}
    for dirpath, _dirnames, filenames in os.walk(data_dir):
        assert stat.S_IMODE(os.stat(dirpath).st_mode) == 0o700, dirpath
        seen["dirs"] += 1
        for name in filenames:
            path = os.path.join(dirpath, name)
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
            seen["files"] += 1
    assert seen["files"] >= 5 and seen["dirs"] >= 6
    assert not any(p.name.startswith(".") for p in data_dir.rglob("*"))


# -- artifacts -------------------------------------------------------------------


def blobs(session: null.NullSession) -> list[Path]:
    return [p for p in (session.root / "blobs" / "sha256").rglob("*") if p.is_file()]


def manifest_of(session: null.NullSession, artifact_id: str) -> dict:
    return json.loads((session.root / "artifacts" / f"{artifact_id}.json").read_text())


def test_file_artifact_round_trip(session: null.NullSession, job: str, tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"\x00weights" * 1000)
    spec = ArtifactSpec(name="my model/v1", type="model", description="d", metadata={"k": 1})
    artifact_id = null.upload_artifact(session, job, source, spec)
    assert artifact_id.startswith("my-model-v1-") and len(artifact_id) == len("my-model-v1-") + 12
    manifest = manifest_of(session, artifact_id)
    assert manifest["name"] == "my model/v1" and manifest["type"] == "model"
    assert manifest["description"] == "d" and manifest["metadata"] == {"k": 1}
    assert manifest["job_id"] == job
    (entry,) = manifest["files"]
    assert entry["path"] == "model.bin" and entry["size"] == 8000
    assert len(blobs(session)) == 1
    assert blobs(session)[0].parent.name == entry["sha256"][:2]

    target = tmp_path / "out"
    target.mkdir()
    result = null.download_artifact(session, artifact_id, target)
    assert result == target / "model.bin"
    assert result.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in target.iterdir()) == ["model.bin"]


def test_identical_content_is_stored_once(
    session: null.NullSession, job: str, tmp_path: Path
) -> None:
    first, second = tmp_path / "one.txt", tmp_path / "two.txt"
    first.write_text("same bytes")
    second.write_text("same bytes")
    id1 = null.upload_artifact(session, job, first, ArtifactSpec(name="a"))
    id2 = null.upload_artifact(session, job, second, ArtifactSpec(name="a"))
    assert id1 != id2
    assert len(blobs(session)) == 1


def test_directory_artifact(session: null.NullSession, job: str, tmp_path: Path) -> None:
    tree = tmp_path / "ckpt"
    (tree / "nested" / "deeper").mkdir(parents=True)
    files = {
        "config.json": b"{}",
        "nested/weights.bin": b"w" * 5000,
        "nested/deeper/copy.bin": b"w" * 5000,
        "nested/empty.txt": b"",
    }
    for rel, data in files.items():
        (tree / rel).write_bytes(data)
    artifact_id = null.upload_artifact(session, job, tree, ArtifactSpec(name="ckpt"))
    manifest = manifest_of(session, artifact_id)
    assert sorted(entry["path"] for entry in manifest["files"]) == sorted(files)
    assert len(blobs(session)) == 3

    target = tmp_path / "restored"
    target.mkdir()
    assert null.download_artifact(session, artifact_id, target) == target
    restored = {
        p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*") if p.is_file()
    }
    assert restored == files


def test_upload_missing_path(session: null.NullSession, job: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        null.upload_artifact(session, job, tmp_path / "nope", ArtifactSpec(name="x"))


def test_download_unknown_artifact(session: null.NullSession, tmp_path: Path) -> None:
    for bad in ("nope-000000000000", "../../etc/passwd", "a/b"):
        with pytest.raises(UnknownJobError) as info:
            null.download_artifact(session, bad, tmp_path)
        assert info.value.job_id == bad


def test_tampered_blob_is_refused(session: null.NullSession, job: str, tmp_path: Path) -> None:
    source = tmp_path / "data.csv"
    source.write_text("a,b\n1,2\n")
    artifact_id = null.upload_artifact(session, job, source, ArtifactSpec(name="data"))
    (blob,) = blobs(session)
    os.chmod(blob, 0o600)
    blob.write_text("a,b\n1,3\n")
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(RuntimeError, match=r"data\.csv.*checksum"):
        null.download_artifact(session, artifact_id, target)
    assert list(target.iterdir()) == []

    blob.unlink()
    with pytest.raises(RuntimeError, match=r"data\.csv.*missing"):
        null.download_artifact(session, artifact_id, target)


@pytest.mark.parametrize("bad_path", ["../x", "sub/../../x", "/tmp/x", "", "."])
def test_escaping_manifest_path_is_refused(
    session: null.NullSession, job: str, tmp_path: Path, bad_path: str
) -> None:
    source = tmp_path / "ok.txt"
    source.write_text("fine")
    artifact_id = null.upload_artifact(session, job, source, ArtifactSpec(name="evil"))
    manifest_path = session.root / "artifacts" / f"{artifact_id}.json"
    manifest = json.loads(manifest_path.read_text())
    good = manifest["files"][0]
    manifest["files"] = [good, {**good, "path": bad_path}]
    manifest_path.write_text(json.dumps(manifest))

    target = tmp_path / "sandbox" / "out"
    target.mkdir(parents=True)
    with pytest.raises(ValueError, match="refus") as info:
        null.download_artifact(session, artifact_id, target)
    assert repr(bad_path) in str(info.value)
    assert list(target.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "sandbox").iterdir()) == ["out"]


def test_manifest_with_bad_digest_is_refused(
    session: null.NullSession, job: str, tmp_path: Path
) -> None:
    source = tmp_path / "ok.txt"
    source.write_text("fine")
    artifact_id = null.upload_artifact(session, job, source, ArtifactSpec(name="evil"))
    manifest_path = session.root / "artifacts" / f"{artifact_id}.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][0]["sha256"] = "../../../../etc/passwd"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="SHA-256"):
        null.download_artifact(session, artifact_id, tmp_path)


# -- property ----------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_overlapping_resends_store_each_seq_once_in_order(data: st.DataObject) -> None:
    total = data.draw(st.integers(min_value=0, max_value=60), label="total")
    with tempfile.TemporaryDirectory() as tmp:
        s = null.connect({}, ConnectContext(data_dir=Path(tmp)))
        job = null.submit_job(s, "prop", TrainingConfig())
        acknowledged = 0
        while acknowledged < total:
            start = data.draw(st.integers(min_value=0, max_value=acknowledged), label="start")
            stop = data.draw(st.integers(min_value=acknowledged + 1, max_value=total), label="stop")
            null.log_metrics(s, job, recs(start, stop))
            acknowledged = stop
            if data.draw(st.booleans(), label="resend"):
                old = data.draw(st.integers(min_value=0, max_value=acknowledged - 1))
                null.log_metrics(s, job, recs(old, acknowledged))
            if data.draw(st.booleans(), label="reconnect"):
                null.disconnect(s)
                s = null.connect({}, ConnectContext(data_dir=Path(tmp)))
        assert history_seqs(s, job) == list(range(total))
        assert [row["_step"] for row in null.get_history(s, job)] == [10 * i for i in range(total)]
        null.disconnect(s)
