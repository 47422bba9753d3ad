"""Typed configuration of a training run, with named presets for every model we compare."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class DataConfig:
    path: str = ""
    k_core: int = 5  # the benchmark files are already 5-core; raw event logs get filtered
    max_len: int = 50  # L
    graph_distance: int = 3  # D
    graph_weighting: str = "binary"  # binary | count | log (of a pair's co-occurrences)


@dataclass
class ModelConfig:
    dim: int = 64
    num_layers: int = 2
    num_heads: int = 2
    ffn_dim: int = 256
    dropout: float = 0.3
    use_graph_view: bool = True
    share_transformer: bool = False
    fusion: str = "attention"  # attention | mlp | add
    graph_source: str = "own"  # own | id
    graph_layers: int = 2
    graph_combine: str = "mean"  # mean | sum | last
    edge_dropout: float = 0.0  # drop each undirected graph edge in a training step
    cl_edge_dropout: float = 0.0  # each contrastive copy over its own edge-dropped graph
    cl_weight: float = 0.1  # λ
    cl_temperature: float = 0.2  # τ
    cl_terms: tuple[str, ...] = ("seq", "graph", "cross")
    cl_views: str = "augment"  # augment (crop/mask/reorder copies) | dropout (second pass)
    crop_keep: float = 0.6  # η
    mask_ratio: float = 0.3  # γ
    reorder_ratio: float = 0.2  # β


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0  # AdamW's decoupled decay of every parameter
    graph_weight_decay: float | None = None  # the graph view's own table instead (None: same)
    patience: int = 10  # epochs without a better validation NDCG@10 before stopping
    lr_decay: float = 1.0  # multiply the lr by this after every lr_decay_patience stale epochs
    lr_decay_patience: int = 3
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:1 ...
    amp: bool = True  # bfloat16 autocast on CUDA; ignored on CPU
    grad_clip: float = 5.0
    eval_batch_size: int = 512
    num_threads: int = 0  # torch CPU threads; 0 leaves torch's default


@dataclass
class ExperimentConfig:
    name: str = "mvcrec"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ExperimentConfig:
        unknown = set(raw) - {"name", "data", "model", "train"}
        if unknown:
            raise ValueError(f"unknown config sections {sorted(unknown)}")
        model = _build(ModelConfig, raw.get("model", {}))
        model.cl_terms = tuple(model.cl_terms)
        return cls(name=raw.get("name", "mvcrec"), data=_build(DataConfig, raw.get("data", {})),
                   model=model, train=_build(TrainConfig, raw.get("train", {})))

    @classmethod
    def load(cls, path: Path | str) -> ExperimentConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def with_overrides(self, overrides: dict[str, Any]) -> ExperimentConfig:
        """Apply ``{"model.dropout": 0.5, ...}``; a misspelt key is an error, never ignored."""
        raw = self.to_dict()
        for dotted, value in overrides.items():
            section, _, key = dotted.partition(".")
            if section not in ("data", "model", "train") or key not in raw[section]:
                raise KeyError(f"unknown config key {dotted!r}")
            raw[section][key] = value
        return ExperimentConfig.from_dict(raw)


def _build(kind: type, values: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown {kind.__name__} keys {sorted(unknown)}")
    return kind(**values)


#: Model presets compared in the benchmark; each is a set of ModelConfig overrides.
PRESETS: dict[str, dict[str, Any]] = {
    "sasrec": {"use_graph_view": False, "cl_weight": 0.0, "cl_terms": ()},
    "mvcrec": {},
    "mvcrec-no-cl": {"cl_weight": 0.0, "cl_terms": ()},
    "mvcrec-no-seq-cl": {"cl_terms": ("graph", "cross")},
    "mvcrec-no-graph-cl": {"cl_terms": ("seq", "cross")},
    "mvcrec-no-cross-cl": {"cl_terms": ("seq", "graph")},
    "mvcrec-mlp-fusion": {"fusion": "mlp"},
    "mvcrec-id-graph": {"graph_source": "id"},
    "cl4srec": {"use_graph_view": False, "cl_terms": ("seq",)},
}


def preset(name: str, data_path: str = "", **model_overrides: Any) -> ExperimentConfig:
    """An :class:`ExperimentConfig` for a named model preset."""
    if name not in PRESETS:
        raise KeyError(f"unknown model preset {name!r}; choose from {sorted(PRESETS)}")
    model = ModelConfig(**{**PRESETS[name], **model_overrides})
    model.cl_terms = tuple(model.cl_terms)
    return ExperimentConfig(name=name, data=DataConfig(path=data_path), model=model)
