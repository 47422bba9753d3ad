"""Export a trained run as a versioned artifact (see :mod:`model.artifact`)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from model.artifact import write_artifact
from model.mvcrec import MVCRec
from training.config import ExperimentConfig
from training.factory import encoder_kwargs
from training.pipeline import PreparedData


@torch.no_grad()
def export_model(model: MVCRec, config: ExperimentConfig, data: PreparedData,
                 root: Path | str, name: str, metrics: dict | None = None) -> Path:
    """Propagate once, then write encoder weights and item tables as a new version."""
    model.eval()
    adjacency = data.adjacency.to(next(model.parameters()).device)
    g = model.graph_item_embeddings(adjacency if config.model.use_graph_view else None)
    fused = model.item_table(g)
    encoder_cpu = model.encoder.to("cpu")
    try:
        return write_artifact(
            root, name, encoder_cpu,
            encoder_kwargs(config.model, data.num_items, config.data.max_len),
            data.interactions.item_ids,
            None if g is None else g.float().cpu().numpy(),
            fused.float().cpu().numpy(), data.popularity,
            {"dataset": Path(config.data.path).name, "model": config.name,
             "config": config.to_dict(), "metrics": metrics or {}},
        )
    finally:
        model.encoder.to(adjacency.device)


def export_run(run_dir: Path | str, root: Path | str, name: str,
               data: PreparedData | None = None) -> Path:
    """Export the best validation epoch of a finished run directory."""
    from training.factory import build_model
    from training.pipeline import prepare_data

    run_dir = Path(run_dir)
    config = ExperimentConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    result_path = run_dir / "result.json"
    metrics = json.loads(result_path.read_text()) if result_path.exists() else {}
    data = data if data is not None else prepare_data(config.data)
    model = build_model(config.model, data.num_items, config.data.max_len)
    model.load_state_dict(torch.load(run_dir / "best_model.pt", map_location="cpu"))
    return export_model(model, config, data, root, name,
                        {k: metrics[k] for k in ("valid", "test", "best_epoch") if k in metrics})
