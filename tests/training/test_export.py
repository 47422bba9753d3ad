"""Export → load → score reproduces the trained model exactly; broken artifacts are refused."""

import json
import shutil

import numpy as np
import pytest
import torch

from model.artifact import ArtifactError, latest_version, load_artifact
from training.config import ExperimentConfig
from training.export import export_run
from training.factory import build_model


@pytest.fixture(scope="module")
def artifact_dir(trained_run, prepared, tmp_path_factory):
    return export_run(trained_run, tmp_path_factory.mktemp("artifacts"), "tiny", data=prepared)


def test_manifest_describes_the_model(artifact_dir, prepared):
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    assert manifest["num_items"] == prepared.num_items
    assert manifest["dim"] == 16 and manifest["max_len"] == 10
    assert set(manifest["files"]) == {"items.json", "encoder.safetensors", "graph_item_emb.npy",
                                      "fused_item_emb.npy", "popularity.npy"}
    assert "NDCG@10" in manifest["metrics"]["test"]
    assert latest_version(artifact_dir.parent.parent, "tiny") == artifact_dir


def test_exported_encoder_reproduces_offline_top10(artifact_dir, trained_run, prepared):
    config = ExperimentConfig.load(trained_run / "config.json")
    model = build_model(config.model, prepared.num_items, config.data.max_len)
    model.load_state_dict(torch.load(trained_run / "best_model.pt"))
    model.eval()
    artifact = load_artifact(artifact_dir)
    rng = np.random.default_rng(0)
    with torch.no_grad():
        g = model.graph_item_embeddings(prepared.adjacency)
        table = model.item_table(g)
        fused = torch.from_numpy(artifact.fused_item_emb)
        graph = torch.from_numpy(artifact.graph_item_emb)
        for _ in range(50):
            length = int(rng.integers(1, 10))
            ids = torch.from_numpy(rng.integers(1, prepared.num_items + 1, (1, length)))
            lengths = torch.tensor([length])
            offline = model.full_sort_predict(ids, lengths, g, table)[0, 1:]
            query = artifact.encoder(ids, graph[ids], lengths)
            served = (query @ fused.T)[0, 1:]
            torch.testing.assert_close(served, offline, atol=1e-4, rtol=0)
            assert torch.equal(served.topk(10).indices, offline.topk(10).indices)


def corrupt(src, tmp_path, action):
    target = tmp_path / "copy"
    shutil.copytree(src, target)
    action(target)
    return target


@pytest.mark.parametrize("action, message", [
    (lambda d: (d / "fused_item_emb.npy").unlink(), "missing"),
    (lambda d: (d / "manifest.json").unlink(), "no manifest.json"),
    (lambda d: (d / "manifest.json").write_text("{not json"), "not valid JSON"),
    (lambda d: (d / "encoder.safetensors").write_bytes(
        (d / "encoder.safetensors").read_bytes()[:1000]), "truncated"),
    (lambda d: (d / "graph_item_emb.npy").write_bytes(
        bytes(b ^ 1 for b in (d / "graph_item_emb.npy").read_bytes())), "sha256"),
])
def test_broken_artifacts_are_refused(artifact_dir, tmp_path, action, message):
    with pytest.raises(ArtifactError, match=message):
        load_artifact(corrupt(artifact_dir, tmp_path, action))


def test_mismatched_manifest_is_refused(artifact_dir, tmp_path):
    def shrink(d):
        manifest = json.loads((d / "manifest.json").read_text())
        manifest["num_items"] -= 1
        (d / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(ArtifactError, match="expected"):
        load_artifact(corrupt(artifact_dir, tmp_path, shrink))


def test_missing_directory_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match="no artifact"):
        load_artifact(tmp_path / "absent")
