"""The exported model artifact: one directory per version, verified on load.

Layout of ``<root>/<name>/<version>/`` (DESIGN.md §4)::

    manifest.json          version, created_at, dataset, N, d, L, config, metrics, sha256 per file
    items.json             internal index -> external item id ("" at index 0, the padding)
    encoder.safetensors    SessionEncoder weights (its constructor arguments are in the manifest)
    graph_item_emb.npy     [N+1, d]  float32 graph-view item embeddings (graph view only)
    fused_item_emb.npy     [N+1, 2d] float32 [g_i ; e_i] (e_i alone without the graph view)
    popularity.npy         [N+1]     int64 training interaction counts

A version is written into a hidden temporary directory and renamed into place, so a reader never
sees half of one. Loading re-hashes every file and checks every shape; anything off raises
:class:`ArtifactError` and nothing is returned.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from model.session_encoder import SessionEncoder

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ITEMS = "items.json"
ENCODER = "encoder.safetensors"
GRAPH_EMB = "graph_item_emb.npy"
FUSED_EMB = "fused_item_emb.npy"
POPULARITY = "popularity.npy"


class ArtifactError(RuntimeError):
    """A missing, truncated, corrupt or inconsistent artifact."""


@dataclass
class Artifact:
    path: Path
    manifest: dict[str, Any]
    item_ids: list[str]  # [N+1], "" at 0
    encoder: SessionEncoder  # eval mode
    graph_item_emb: np.ndarray | None  # [N+1, d]
    fused_item_emb: np.ndarray  # [N+1, D]
    popularity: np.ndarray  # [N+1]

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def num_items(self) -> int:
        return int(self.manifest["num_items"])

    def item_index(self) -> dict[str, int]:
        """External id → internal index."""
        return {item: index for index, item in enumerate(self.item_ids) if index > 0}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_artifact(root: Path | str, name: str, encoder: SessionEncoder,
                   encoder_kwargs: dict[str, Any], item_ids: list[str],
                   graph_item_emb: np.ndarray | None, fused_item_emb: np.ndarray,
                   popularity: np.ndarray, metadata: dict[str, Any]) -> Path:
    """Write a new version under ``root/name/`` atomically and return its directory."""
    num_items = len(item_ids) - 1
    fused_item_emb = np.ascontiguousarray(fused_item_emb, dtype=np.float32)
    if graph_item_emb is not None:
        graph_item_emb = np.ascontiguousarray(graph_item_emb, dtype=np.float32)
    _check_shapes(num_items, encoder.dim, encoder.query_dim, graph_item_emb, fused_item_emb,
                  popularity, encoder.use_graph_view)
    parent = Path(root) / name
    parent.mkdir(parents=True, exist_ok=True)
    created = datetime.now(timezone.utc)
    fingerprint = hashlib.sha256(np.ascontiguousarray(fused_item_emb).tobytes()).hexdigest()[:8]
    version = f"{created.strftime('%Y%m%dT%H%M%SZ')}-{fingerprint}"
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=parent))
    try:
        (staging / ITEMS).write_text(json.dumps(item_ids))
        save_model(encoder, str(staging / ENCODER))
        np.save(staging / FUSED_EMB, fused_item_emb)
        np.save(staging / POPULARITY, np.asarray(popularity, dtype=np.int64))
        if graph_item_emb is not None:
            np.save(staging / GRAPH_EMB, graph_item_emb)
        files = {f.name: {"sha256": sha256_file(f), "bytes": f.stat().st_size}
                 for f in sorted(staging.iterdir())}
        manifest = {
            "format_version": FORMAT_VERSION, "name": name, "version": version,
            "created_at": created.isoformat(), "num_items": num_items, "dim": encoder.dim,
            "query_dim": encoder.query_dim, "max_len": encoder.max_len,
            "graph_view": encoder.use_graph_view, "encoder": encoder_kwargs,
            **metadata, "files": files,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        for file in staging.iterdir():
            file.chmod(0o644)
        staging.chmod(0o755)
        final = parent / version
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def latest_version(root: Path | str, name: str) -> Path:
    """The newest complete version directory of ``root/name`` (hidden staging dirs ignored)."""
    parent = Path(root) / name
    versions = sorted(p for p in parent.glob("[!.]*") if (p / MANIFEST).exists())
    if not versions:
        raise ArtifactError(f"no artifact versions under {parent}")
    return versions[-1]


def load_artifact(path: Path | str, device: torch.device | str = "cpu") -> Artifact:
    """Load and verify one version directory; raise :class:`ArtifactError` on any defect."""
    path = Path(path)
    manifest = _read_manifest(path)
    for filename, expected in manifest["files"].items():
        file = path / filename
        if not file.is_file():
            raise ArtifactError(f"{path}: file {filename} listed in the manifest is missing")
        if file.stat().st_size != expected["bytes"]:
            raise ArtifactError(f"{path}: {filename} has {file.stat().st_size} bytes, manifest "
                                f"says {expected['bytes']} (truncated or replaced)")
        if sha256_file(file) != expected["sha256"]:
            raise ArtifactError(f"{path}: {filename} does not match its sha256 checksum")
    required = {ITEMS, ENCODER, FUSED_EMB, POPULARITY} | ({GRAPH_EMB} if manifest["graph_view"]
                                                         else set())
    missing = required - set(manifest["files"])
    if missing:
        raise ArtifactError(f"{path}: manifest lists no {sorted(missing)}")
    try:
        item_ids = json.loads((path / ITEMS).read_text())
        fused = np.load(path / FUSED_EMB, allow_pickle=False)
        popularity = np.load(path / POPULARITY, allow_pickle=False)
        graph = (np.load(path / GRAPH_EMB, allow_pickle=False) if manifest["graph_view"]
                 else None)
        encoder = SessionEncoder(**manifest["encoder"])
        load_model(encoder, str(path / ENCODER), strict=True, device=str(device))
    except (ValueError, OSError, RuntimeError, TypeError, KeyError) as error:
        raise ArtifactError(f"{path}: unreadable artifact ({error})") from error
    if len(item_ids) != manifest["num_items"] + 1:
        raise ArtifactError(f"{path}: items.json has {len(item_ids)} entries, expected "
                            f"{manifest['num_items'] + 1}")
    _check_shapes(manifest["num_items"], encoder.dim, encoder.query_dim, graph, fused, popularity,
                  encoder.use_graph_view)
    encoder.to(device).eval()
    return Artifact(path, manifest, item_ids, encoder, graph, fused, popularity)


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise ArtifactError(f"no artifact directory at {path}")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no {MANIFEST} (incomplete artifact)") from None
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{path}: {MANIFEST} is not valid JSON ({error})") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: {MANIFEST} is not a JSON object")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: unsupported artifact format "
                            f"{manifest.get('format_version')!r}, expected {FORMAT_VERSION}")
    for key in ("version", "num_items", "encoder", "files", "graph_view"):
        if key not in manifest:
            raise ArtifactError(f"{path}: {MANIFEST} lacks {key!r}")
    return manifest


def _check_shapes(num_items: int, dim: int, query_dim: int, graph: np.ndarray | None,
                  fused: np.ndarray, popularity: np.ndarray, graph_view: bool) -> None:
    rows = num_items + 1
    if fused.shape != (rows, query_dim) or fused.dtype != np.float32:
        raise ArtifactError(f"fused_item_emb is {fused.dtype}{list(fused.shape)}, expected "
                            f"float32[{rows}, {query_dim}]")
    if popularity.shape != (rows,):
        raise ArtifactError(f"popularity has shape {list(popularity.shape)}, expected [{rows}]")
    if graph_view and (graph is None or graph.shape != (rows, dim)
                       or graph.dtype != np.float32):
        shape = None if graph is None else list(graph.shape)
        raise ArtifactError(f"graph_item_emb is {shape}, expected float32[{rows}, {dim}]")
