import numpy as np
import pytest
import torch

from training.batching import TrainBatcher
from training.config import PRESETS, preset
from training.factory import build_augmenter, build_model


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_trains_one_step(name, prepared):
    config = preset(name, dim=16, ffn_dim=32)
    model = build_model(config.model, prepared.num_items, 10)
    augmenter = build_augmenter(config.model, prepared.num_items)
    batcher = TrainBatcher(prepared.split.train, 10, 32, augmenter)
    batch = next(batcher.epoch(np.random.default_rng(0)))
    adj = prepared.adjacency if config.model.use_graph_view else None
    losses = model.calculate_loss(batch.inputs, batch.targets, adj, batch.augmented,
                                  batch.augmented_lengths)
    assert torch.isfinite(losses["loss"])
    expected_terms = {f"cl_{t}" for t in config.model.cl_terms if config.model.cl_weight > 0}
    assert {k for k in losses if k.startswith("cl_")} == expected_terms
    losses["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_sasrec_preset_has_no_graph_parameters():
    model = build_model(preset("sasrec", dim=16).model, 50, 10)
    names = [n for n, _ in model.named_parameters()]
    assert not any("graph" in n or "fuse" in n for n in names)


def test_id_graph_source_propagates_the_id_table(prepared):
    model = build_model(preset("mvcrec-id-graph", dim=16).model, prepared.num_items, 10)
    assert not hasattr(model, "graph_table")
    g = model.graph_item_embeddings(prepared.adjacency)
    assert g.shape == (prepared.num_items + 1, 16)
    g.sum().backward()
    assert model.encoder.item_embedding.weight.grad is not None


def test_scores_are_inner_products_with_the_fused_table(prepared):
    model = build_model(preset("mvcrec", dim=16, ffn_dim=32).model, prepared.num_items, 10).eval()
    with torch.no_grad():
        g = model.graph_item_embeddings(prepared.adjacency)
        table = model.item_table(g)
        ids = torch.tensor([[1, 2, 3]])
        scores = model.full_sort_predict(ids, torch.tensor([3]), g, table)
        h_id, h_graph = model.encoder.encode_views(ids, g[ids])
        u_g = model.encoder.fuse_graph(h_graph[:, -1], h_id[:, -1])
        u_e = model.encoder.fuse_id(h_id[:, -1], h_graph[:, -1])
        e = model.encoder.item_embedding.weight[: prepared.num_items + 1]
        torch.testing.assert_close(scores, u_g @ g.T + u_e @ e.T, atol=1e-5, rtol=1e-5)


def test_dropout_views_need_no_augmented_batch(prepared):
    config = preset("mvcrec", dim=16, ffn_dim=32, cl_views="dropout")
    assert build_augmenter(config.model, prepared.num_items) is None
    model = build_model(config.model, prepared.num_items, 10)
    batch = next(TrainBatcher(prepared.split.train, 10, 32).epoch(np.random.default_rng(0)))
    losses = model.calculate_loss(batch.inputs, batch.targets, prepared.adjacency)
    assert {"cl_seq", "cl_graph", "cl_cross"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize("cl_views", ["augment", "dropout"])
def test_a_step_runs_under_bfloat16_autocast(prepared, cl_views):
    """The mixed-precision path used on CUDA, exercised with CPU autocast."""
    config = preset("mvcrec", dim=16, ffn_dim=32, cl_views=cl_views)
    model = build_model(config.model, prepared.num_items, 10)
    augmenter = build_augmenter(config.model, prepared.num_items)
    batch = next(TrainBatcher(prepared.split.train, 10, 32, augmenter)
                 .epoch(np.random.default_rng(0)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model.calculate_loss(batch.inputs, batch.targets, prepared.adjacency,
                                      batch.augmented, batch.augmented_lengths)
    assert losses["loss"].dtype == torch.float32 and torch.isfinite(losses["loss"])
    losses["loss"].backward()
    assert model.graph_table.weight.grad is not None


def test_contrastive_copies_can_read_their_own_edge_dropped_graphs(prepared):
    """``cl_edge_dropout`` changes only the contrastive terms (the CE term reads the step's
    graph), and the graph table learns through the extra propagations."""
    batch = next(TrainBatcher(prepared.split.train, 10, 32,
                              build_augmenter(preset("mvcrec").model, prepared.num_items))
                 .epoch(np.random.default_rng(0)))
    losses = {}
    for p in (0.0, 0.5):
        torch.manual_seed(0)
        config = preset("mvcrec", dim=16, ffn_dim=32, dropout=0.0, cl_edge_dropout=p)
        model = build_model(config.model, prepared.num_items, 10)
        losses[p] = model.calculate_loss(batch.inputs, batch.targets, prepared.adjacency,
                                         batch.augmented, batch.augmented_lengths)
    assert losses[0.5]["ce"] == losses[0.0]["ce"]
    assert losses[0.5]["cl_graph"] != losses[0.0]["cl_graph"]
    losses[0.5]["cl_graph"].backward()
    assert model.graph_table.weight.grad.abs().sum() > 0
