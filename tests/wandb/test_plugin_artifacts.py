"""Artifacts against the fake W&B server: the upload sequence, dedup, faults, download checks."""

from __future__ import annotations

import json

import httpx
import pytest
import trackmux_wandb as plugin
from _support import Spy, connect, run
from trackmux_spec import (
    ArtifactSpec,
    PermanentError,
    RetryableError,
    TrainingConfig,
    UnknownJobError,
)
from trackmux_wandb._manifest import b64_md5
from trackmux_wandb.testing import Drop, Status, manifest_digest

SPEC = ArtifactSpec(
    name="llama2 lora/adapter", type="model", description="d", metadata={"epoch": 3}
)


def make_tree(root):
    (root / "sub").mkdir(parents=True)
    (root / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    (root / "sub" / "config.json").write_text('{"r": 16}')
    (root / "empty.txt").write_bytes(b"")
    return root


def session_with_run(fake, tmp_path, transport=None):
    async def go():
        session = await connect(fake, tmp_path, transport=transport)
        await plugin.submit_job(session, "run1", TrainingConfig(project_name="peft"))
        return session

    return run(go())


def operations(fake):
    return [
        r.operation
        for r in fake.requests
        if r.operation not in ("Viewer", "RunResumeStatus", "UpsertBucket")
    ]


def test_directory_upload_follows_the_sdk_sequence(fake, tmp_path):
    spy = Spy(fake.transport())
    session = session_with_run(fake, tmp_path, spy)
    tree = make_tree(tmp_path / "adapter")
    fake.clear_requests()
    artifact_id = run(plugin.upload_artifact(session, "run1", tree, SPEC))
    assert operations(fake) == [
        "CreateArtifact",
        "CreateArtifactManifest",
        "CreateArtifactFiles",
        "storage",
        "storage",
        "storage",
        "CreateArtifactManifest",
        "storage",
        "CommitArtifact",
    ]
    stored = fake.artifact(artifact_id)
    assert stored.state == "COMMITTED"
    assert stored.collection == "llama2-lora-adapter" and stored.type == "model"
    assert stored.run_name == "run1"
    assert set(stored.manifest["contents"]) == {"weights.bin", "sub/config.json", "empty.txt"}
    assert stored.digest == manifest_digest(stored.manifest)
    entry = stored.manifest["contents"]["sub/config.json"]
    assert entry["digest"] == b64_md5(b'{"r": 16}') and entry["size"] == 9
    assert entry["birthArtifactID"] == artifact_id
    storage = [r for r in spy.requests if "/_storage/" in r.url.path]
    assert storage and all("authorization" not in r.headers for r in storage)
    assert all("x-fake-signature" in r.headers for r in storage if r.method == "PUT")
    api = [r for r in spy.requests if "/_storage/" not in r.url.path]
    assert all(r.headers["authorization"].startswith("Basic ") for r in api)


def test_same_content_is_deduplicated(fake, tmp_path):
    session = session_with_run(fake, tmp_path)
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights")
    first = run(plugin.upload_artifact(session, "run1", path, SPEC))
    fake.clear_requests()
    second = run(plugin.upload_artifact(session, "run1", path, SPEC))
    assert first == second
    assert operations(fake) == ["CreateArtifact"]


def test_missing_path(fake, tmp_path):
    session = session_with_run(fake, tmp_path)
    with pytest.raises(FileNotFoundError):
        run(plugin.upload_artifact(session, "run1", tmp_path / "absent", SPEC))


@pytest.mark.parametrize(
    "match", ["CreateArtifact", "CreateArtifactFiles", "storage", "CommitArtifact"]
)
def test_a_transient_failure_is_retryable_and_the_retry_commits_one_version(
    fake, tmp_path, match
):
    """The engine retries a RetryableError from any step; the retry starts over and W&B's
    digest deduplication keeps it to one version."""
    session = session_with_run(fake, tmp_path)
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights")
    fake.inject(Status(500), match=match, count=1)
    with pytest.raises(RetryableError, match=r"failed: .*HTTP 500"):
        run(plugin.upload_artifact(session, "run1", path, SPEC))
    artifact_id = run(plugin.upload_artifact(session, "run1", path, SPEC))
    assert fake.artifact(artifact_id).state == "COMMITTED"
    assert [a.id for a in fake.artifacts(collection="llama2-lora-adapter")] == [artifact_id]


def test_a_failing_step_is_named(fake, tmp_path):
    session = session_with_run(fake, tmp_path)
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights")
    fake.inject(Status(500), match="CreateArtifactFiles", count=1)
    with pytest.raises(RetryableError, match=r"createArtifactFiles failed: .*HTTP 500"):
        run(plugin.upload_artifact(session, "run1", path, SPEC))


def test_a_refused_step_is_permanent(fake, tmp_path):
    session = session_with_run(fake, tmp_path)
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights")
    fake.inject(Status(403), match="CommitArtifact")
    with pytest.raises(PermanentError, match="commitArtifact failed"):
        run(plugin.upload_artifact(session, "run1", path, SPEC))
    assert fake.pending_faults == 0


def test_download_round_trip_of_a_directory(fake, tmp_path):
    session = session_with_run(fake, tmp_path)
    tree = make_tree(tmp_path / "adapter")
    artifact_id = run(plugin.upload_artifact(session, "run1", tree, SPEC))
    target = tmp_path / "out"
    target.mkdir()
    assert run(plugin.download_artifact(session, artifact_id, target)) == target
    for name in ("weights.bin", "sub/config.json", "empty.txt"):
        assert (target / name).read_bytes() == (tree / name).read_bytes()
    assert not list(target.rglob("*.part"))


def test_download_of_a_single_file_returns_the_file(fake, tmp_path):
    session = session_with_run(fake, tmp_path)
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights")
    artifact_id = run(plugin.upload_artifact(session, "run1", path, SPEC))
    target = tmp_path / "out"
    target.mkdir()
    got = run(plugin.download_artifact(session, artifact_id, target))
    assert got == (target / "model.bin").resolve() and got.read_bytes() == b"weights"


def test_download_survives_a_dropped_connection(fake, tmp_path):
    session = session_with_run(fake, tmp_path)
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights")
    artifact_id = run(plugin.upload_artifact(session, "run1", path, SPEC))
    fake.inject(Drop(), match="storage")
    target = tmp_path / "out"
    target.mkdir()
    assert run(plugin.download_artifact(session, artifact_id, target)).read_bytes() == b"weights"


def test_unknown_artifact(fake, tmp_path):
    session = session_with_run(fake, tmp_path)
    with pytest.raises(UnknownJobError):
        run(plugin.download_artifact(session, "QXJ0aWZhY3Q6OTk5", tmp_path))


def _tampering(rewrite_manifest=None, rewrite_file=None):
    def rewrite(request, response):
        if "/_storage/get/" not in request.url.path or response.status_code != 200:
            return None
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        if isinstance(body, dict) and "contents" in body:
            if rewrite_manifest:
                return httpx.Response(200, content=json.dumps(rewrite_manifest(body)).encode())
            return None
        if rewrite_file:
            return httpx.Response(200, content=rewrite_file(response.content))
        return None

    return rewrite


@pytest.mark.parametrize("bad", ["../escape.txt", "sub/../../escape.txt", "/tmp/abs.txt"])
def test_download_refuses_paths_outside_the_target_before_writing(fake, tmp_path, bad):
    def craft(manifest):
        contents = manifest["contents"]
        contents[bad] = dict(next(iter(contents.values())))
        return manifest

    spy = Spy(fake.transport(), _tampering(rewrite_manifest=craft))
    session = session_with_run(fake, tmp_path, spy)
    tree = make_tree(tmp_path / "adapter")
    artifact_id = run(plugin.upload_artifact(session, "run1", tree, SPEC))
    target = tmp_path / "deep" / "out"
    target.mkdir(parents=True)
    with pytest.raises(ValueError, match=r"escape|abs"):
        run(plugin.download_artifact(session, artifact_id, target))
    assert list(target.iterdir()) == []
    assert not (tmp_path / "deep" / "escape.txt").exists()
    assert not (tmp_path / "escape.txt").exists()


def test_download_refuses_a_checksum_mismatch(fake, tmp_path):
    spy = Spy(fake.transport(), _tampering(rewrite_file=lambda body: body + b"tampered"))
    session = session_with_run(fake, tmp_path, spy)
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights")
    artifact_id = run(plugin.upload_artifact(session, "run1", path, SPEC))
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(RuntimeError, match=r"model\.bin"):
        run(plugin.download_artifact(session, artifact_id, target))
    assert list(target.iterdir()) == []
