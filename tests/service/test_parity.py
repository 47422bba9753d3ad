"""The service's top-10 is the trained model's offline top-10 (history masked)."""

from __future__ import annotations

import numpy as np
import torch
from fastapi.testclient import TestClient

from service.main import create_app
from service.publish import publish_version
from training.batching import pad_right
from training.config import ExperimentConfig
from training.factory import build_model

from .conftest import NAME


def test_service_top10_equals_offline_top10(make_settings, redis_url, prefix, store, versions,
                                            trained_run, prepared):
    config = ExperimentConfig.load(trained_run / "config.json")
    max_len = config.data.max_len
    model = build_model(config.model, prepared.num_items, max_len)
    model.load_state_dict(torch.load(trained_run / "best_model.pt", map_location="cpu"))
    model.eval()
    rng = np.random.default_rng(7)
    sequences = prepared.interactions.sequences
    sessions = []
    for user in rng.integers(len(sequences), size=500):
        sequence = sequences[user]
        sessions.append(sequence[:int(rng.integers(1, len(sequence) + 1))])
    assert any(len(s) > max_len for s in sessions)  # the cut to the last L items is exercised
    with torch.no_grad():
        g = model.graph_item_embeddings(prepared.adjacency)
        table = model.item_table(g)
        inputs = [s[-max_len:] for s in sessions]
        scores = model.full_sort_predict(torch.from_numpy(pad_right(inputs)),
                                         torch.tensor([len(x) for x in inputs]), g, table)
    scores[:, 0] = float("-inf")
    for row, session in enumerate(sessions):  # the whole history is masked, as exclude_seen
        scores[row, torch.from_numpy(session)] = float("-inf")
    top_scores, top_items = scores.topk(10, dim=1)

    item_ids = prepared.interactions.item_ids
    publish_version(store, versions[0], NAME)
    with TestClient(create_app(make_settings(redis_url=redis_url, key_prefix=prefix))) as client:
        for row, session in enumerate(sessions):
            body = client.post("/recommend", json={"session": [item_ids[i] for i in session],
                                                   "k": 10}).json()
            assert body["strategy"] == "model"
            assert [i["item"] for i in body["items"]] == [item_ids[i] for i in top_items[row]]
            np.testing.assert_allclose([i["score"] for i in body["items"]],
                                       top_scores[row].numpy(), atol=1e-4, rtol=0)
