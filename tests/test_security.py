"""Security properties of a whole session, end to end through the public API.

* Everything trackmux creates under the data directory is private: directories 0700,
  files 0600 (journal, cursors, the offline tracker's store, artifacts).
* ``Tracker.download_artifact`` refuses a manifest entry that escapes the target directory
  (offline tracker and W&B), before writing anything.
* The W&B API key (and its ``api:KEY`` Basic form) appears in no log record at any level,
  on stderr/stdout, in any error or report, or in any file under the data directory, even
  through a retried 5xx, a key revoked mid-run and a rejected login.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trackmux
from trackmux_wandb.testing import FakeWandB, Status

PROJECT = "secure"
SECRET_KEY = "leakcheck_" + "S3cr3tK3y" * 5  # 55 characters of [A-Za-z0-9_]


pytestmark = pytest.mark.usefixtures("isolated_env")


@pytest.fixture
def umask() -> Iterator[None]:
    """The usual umask 022 (so group/other bits would show if trackmux relied on it)."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def artifact_tree(root: Path) -> Path:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "weights.bin").write_bytes(b"\x00" * 1000)
    (root / "sub" / "config.json").write_text('{"a": 1}')
    (root / "sub" / "deeper" / "notes.txt").write_text("notes")
    return root


# -- file modes ---------------------------------------------------------------------------


def modes_under(root: Path) -> dict[str, str]:
    """``{relative path: octal permission bits}`` of ``root`` and everything below it."""
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


@pytest.mark.parametrize("nested", [False, True], ids=["data-dir", "nested-data-dir"])
def test_every_directory_is_0700_and_every_file_0600(
        tmp_path: Path, umask: None, nested: bool) -> None:
    """A run with metrics, a file and a directory artifact, a download, a sync, a finish."""
    data_dir = tmp_path / "a" / "b" / "data" if nested else tmp_path / "data"
    source = artifact_tree(tmp_path / "ckpt")
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        run = tracker.submit_job(project_name=PROJECT)
        for step in range(250):
            tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
        tracker.upload_artifact(source, {"name": "ckpt", "type": "model"})
        single = tracker.upload_artifact(source / "weights.bin")
        tracker.download_artifact(single, tmp_path / "restored")
        tracker.finish(run)
    trackmux.sync([run], tracker="null", data_dir=data_dir)

    modes = modes_under(data_dir)
    assert len(modes) > 8, modes
    wrong = {}
    for rel, mode in modes.items():
        path = data_dir / rel
        expected = "0o700" if path.is_dir() else "0o600"
        if mode != expected:
            wrong[rel] = mode
    assert wrong == {}, f"not private (dirs must be 0o700, files 0o600): {wrong}"


# -- artifact downloads that escape the target ----------------------------------------------


ESCAPES = ["../escape.txt", "sub/../../escape.txt", "/tmp/trackmux-abs-escape.txt"]


@pytest.mark.parametrize("bad", ESCAPES)
def test_offline_download_refuses_a_manifest_path_escaping_the_target(
        tmp_path: Path, bad: str) -> None:
    """Through ``Tracker.download_artifact`` on the offline tracker: refused, nothing written."""
    data_dir = tmp_path / "data"
    source = artifact_tree(tmp_path / "ckpt")
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        tracker.submit_job(project_name=PROJECT)
        artifact_id = tracker.upload_artifact(source, {"name": "ckpt"}, wait=True)
        # the offline tracker's store is a plain directory: tamper with the manifest there
        (manifest_path,) = (data_dir / "trackers" / "null").rglob("artifacts/ckpt-*.json")
        manifest = json.loads(manifest_path.read_text())
        manifest["files"].append({**manifest["files"][0], "path": bad})
        manifest_path.write_text(json.dumps(manifest))
        target = tmp_path / "jail" / "out"
        with pytest.raises(ValueError, match="refus"):
            tracker.download_artifact(artifact_id, target)
    assert list(target.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "jail").iterdir()) == ["out"]
    assert not Path("/tmp/trackmux-abs-escape.txt").exists()


class ManifestRewriter(httpx.AsyncBaseTransport):
    """The fake's transport, adding ``bad`` to every artifact manifest it serves."""

    def __init__(self, fake: FakeWandB, bad: str) -> None:
        self.inner = fake.transport()
        self.bad = bad

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method != "GET" or "/_storage/" not in request.url.path:
            return response
        body = await response.aread()
        try:
            manifest = json.loads(body)
        except ValueError:
            return response
        if not isinstance(manifest, dict) or "contents" not in manifest:
            return response
        contents = manifest["contents"]
        contents[self.bad] = dict(next(iter(contents.values())))
        return httpx.Response(200, content=json.dumps(manifest).encode())


@pytest.mark.parametrize("bad", ESCAPES)
def test_wandb_download_refuses_a_manifest_path_escaping_the_target(
        tmp_path: Path, bad: str) -> None:
    """Through ``Tracker.download_artifact`` on W&B (a tampered manifest): refused."""
    fake = FakeWandB()
    tracker = trackmux.Tracker(
        ["wandb"], data_dir=tmp_path / "data",
        settings={"wandb": {"transport": ManifestRewriter(fake, bad), "base_url": fake.base_url,
                            "artifact_retry_wait": 0}})
    tracker.connect({"api_key": fake.api_key})
    with tracker:
        tracker.submit_job(project_name=PROJECT)
        artifact_id = tracker.upload_artifact(artifact_tree(tmp_path / "ckpt"), {"name": "ckpt"})
        target = tmp_path / "jail" / "out"
        with pytest.raises(ValueError, match=r"escape|abs|outside|refused"):
            tracker.download_artifact(artifact_id, target)
    assert list(target.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "jail").iterdir()) == ["out"]
    assert not Path("/tmp/trackmux-abs-escape.txt").exists()


# -- the API key leaks nowhere ----------------------------------------------------------------


def secret_forms(key: str) -> list[str]:
    """The key as text, and the Basic-auth token that carries it."""
    return [key, base64.b64encode(f"api:{key}".encode()).decode(),
            base64.b64encode(key.encode()).decode()[:40]]


@pytest.mark.slow
def test_the_api_key_appears_in_no_log_output_error_or_file(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """A whole W&B run over real sockets with DEBUG logging everywhere: a retried 5xx, an
    artifact, a key revoked mid-run (401), a rejected login, a sync. The key is nowhere."""
    for name in (None, "trackmux", "trackmux.wandb", "httpx", "httpcore", "urllib3"):
        caplog.set_level(logging.DEBUG, logger=name)
    data_dir = tmp_path / "data"
    fake = FakeWandB(api_key=SECRET_KEY)
    texts: list[str] = []
    with fake.serve() as url:
        settings = {"wandb": {"base_url": url, "artifact_retry_wait": 0}}
        tracker = trackmux.Tracker(["wandb"], data_dir=data_dir, settings=settings)
        tracker.connect({"api_key": SECRET_KEY})
        run = tracker.submit_job(project_name=PROJECT)
        fake.inject(Status(500), count=2, match="file_stream")
        for step in range(120):
            tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
        texts.append(str(tracker.flush(timeout=30)))
        assert fake.pending_faults == 0
        tracker.upload_artifact(artifact_tree(tmp_path / "ckpt"), {"name": "ckpt"})
        texts.append(repr(tracker))
        fake.revoke_key()
        for step in range(120, 150):
            tracker.log_metrics(run, {"loss": 0.0}, step=step)
        report = tracker.flush(timeout=30)
        assert report.trackers[0].state == "failed" and "401" in str(report), report
        texts.append(str(report))
        texts.append(str(tracker.disconnect(timeout=5)))

        rejected = trackmux.Tracker(["wandb"], data_dir=data_dir, settings=settings)
        with pytest.raises(ValueError) as info:
            rejected.connect({"api_key": SECRET_KEY})
        texts.append(f"{info.value!r} {info.value.__cause__!r} {info.value.__context__!r}")

        fake.add_api_key(SECRET_KEY, entity=fake.entity)
        synced = trackmux.sync(tracker="wandb", data_dir=data_dir,
                               credentials={"api_key": SECRET_KEY}, settings=settings)
        assert synced.ok, synced
        texts.append(str(synced))
    assert len(fake.history(fake.entity, PROJECT, run)) == 150
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    assert any("401" in r.getMessage() for r in caplog.records), "the 401 must be logged"

    out, err = capfd.readouterr()
    logged = "\n".join([caplog.text, *(r.getMessage() for r in caplog.records),
                        *(repr(r.args) for r in caplog.records)])
    for secret in secret_forms(SECRET_KEY):
        assert secret not in logged, "API key in a log record"
        assert secret not in out + err, "API key on stdout/stderr"
        assert secret not in "\n".join(texts), "API key in a report, repr or error"
        for path in data_dir.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), f"API key in {path}"
