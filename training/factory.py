"""Turn the typed configs into model and optimizer objects (models take plain arguments)."""

from __future__ import annotations

from typing import Any

import torch

from model.mvcrec import MVCRec
from model.session_encoder import SessionEncoder
from training.augment import Augmenter
from training.config import ModelConfig, TrainConfig


def encoder_kwargs(config: ModelConfig, num_items: int, max_len: int) -> dict[str, Any]:
    """Constructor arguments of the :class:`SessionEncoder` (stored in the artifact manifest)."""
    return {"num_items": num_items, "dim": config.dim, "max_len": max_len,
            "num_layers": config.num_layers, "num_heads": config.num_heads,
            "ffn_dim": config.ffn_dim, "dropout": config.dropout,
            "use_graph_view": config.use_graph_view,
            "share_transformer": config.share_transformer, "fusion": config.fusion}


def build_model(config: ModelConfig, num_items: int, max_len: int) -> MVCRec:
    encoder = SessionEncoder(**encoder_kwargs(config, num_items, max_len))
    return MVCRec(encoder, graph_source=config.graph_source, graph_layers=config.graph_layers,
                  graph_combine=config.graph_combine, edge_dropout=config.edge_dropout,
                  cl_edge_dropout=config.cl_edge_dropout,
                  cl_weight=config.cl_weight,
                  cl_temperature=config.cl_temperature, cl_terms=tuple(config.cl_terms),
                  cl_views=config.cl_views)


def build_augmenter(config: ModelConfig, num_items: int) -> Augmenter | None:
    """Augmentations are only drawn when a contrastive term will use them."""
    if config.cl_weight <= 0 or not config.cl_terms or config.cl_views != "augment":
        return None
    return Augmenter(config.crop_keep, config.mask_ratio, config.reorder_ratio,
                     mask_token=num_items + 1)


def build_optimizer(model: MVCRec, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over every parameter; the graph view's own table (and its mask row) decays at
    ``graph_weight_decay`` when that is set, the rest at ``weight_decay``."""
    graph = [] if config.graph_weight_decay is None else model.graph_parameters()
    graph_ids = {id(p) for p in graph}
    rest = [p for p in model.parameters() if id(p) not in graph_ids]
    groups: list[dict[str, Any]] = [{"params": rest, "weight_decay": config.weight_decay}]
    if graph:
        groups.append({"params": graph, "weight_decay": config.graph_weight_decay})
    return torch.optim.AdamW(groups, lr=config.lr)
