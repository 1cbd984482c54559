"""One run fanned out to MLflow (real server), W&B (in-process fake) and the offline tracker:
every row, and one artifact, which each tracker stores once."""

from __future__ import annotations

import math

import trackmux
from trackmux_spec import JobStatus, TrainingConfig
from trackmux_wandb.testing import FakeWandB

_ROWS = 300


def _values(row):
    return {k: v for k, v in row.items() if not k.startswith("_")}


def test_one_run_reaches_mlflow_wandb_and_null_alike(
    mlflow_server, experiment, tmp_path, monkeypatch
):
    for name in ("WANDB_API_KEY", "WANDB_ENTITY", "WANDB_BASE_URL", "WANDB_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    fake = FakeWandB()
    tracker = trackmux.Tracker(
        ["mlflow", "wandb", "null"],
        data_dir=tmp_path / "trackmux",
        settings={
            "mlflow": {"experiment": experiment},
            "wandb": {"transport": fake.transport(), "base_url": fake.base_url},
        },
    )
    tracker.connect(
        {
            "mlflow": {"tracking_uri": mlflow_server.url},
            "wandb": {"api_key": fake.api_key},
            "null": {},
        }
    )
    logged = []
    try:
        run = tracker.submit_job(TrainingConfig(name="fan-out", learning_rate=3e-4))
        for step in range(_ROWS):
            row = {"loss": 2.0 / (step + 1), "lr": 3e-4 * (1 - step / _ROWS)}
            if step % 10 == 0:
                row["eval/acc"] = step / _ROWS
            tracker.log_metrics(run, row, step=step * 2)
            logged.append((step * 2, row))
            if step == _ROWS // 2:
                (tmp_path / "ckpt" / "sub").mkdir(parents=True)
                (tmp_path / "ckpt" / "model.bin").write_bytes(bytes(range(256)) * 100)
                (tmp_path / "ckpt" / "sub" / "config.json").write_bytes(b'{"rank": 16}')
                artifact_id = tracker.upload_artifact(tmp_path / "ckpt", {"name": "ckpt"})
                (tmp_path / "ckpt" / "model.bin").write_bytes(b"overwritten")
        report = tracker.flush(timeout=120)
        assert report.delivered, report
        histories = {
            name: tracker.get_history(run, tracker=name) for name in ("mlflow", "wandb", "null")
        }
        tracker.finish(run)
        statuses = {
            name: tracker.get_job_status(run, tracker=name) for name in ("mlflow", "wandb", "null")
        }
        downloads = {
            name: tracker.download_artifact(artifact_id, tmp_path / name, tracker=name)
            for name in ("mlflow", "wandb", "null")
        }
    finally:
        tracker.disconnect()

    expected = {"model.bin": bytes(range(256)) * 100, "sub/config.json": b'{"rank": 16}'}
    for name, folder in downloads.items():
        got = {p.relative_to(folder).as_posix(): p.read_bytes()
               for p in folder.rglob("*") if p.is_file()}
        assert got == expected, name
    assert [a.state for a in fake.artifacts(collection="ckpt")] == ["COMMITTED"]
    assert len(list((tmp_path / "trackmux" / "trackers" / "null" / "artifacts").iterdir())) == 1
    again = trackmux.sync([run], tracker="mlflow", data_dir=tmp_path / "trackmux",
                          credentials={"tracking_uri": mlflow_server.url},
                          settings={"mlflow": {"experiment": experiment}})
    assert (again.runs[0].state, again.runs[0].artifacts_delivered) == ("up to date", 0)

    for name, rows in histories.items():
        assert [r["_step"] for r in rows] == [step for step, _ in logged], name
        for (_, expected), row in zip(logged, rows, strict=True):
            got = _values(row)
            assert got.keys() == expected.keys(), (name, got, expected)
            assert all(math.isclose(got[k], v, rel_tol=0, abs_tol=0) for k, v in expected.items())
    assert set(statuses.values()) == {JobStatus.FINISHED}
