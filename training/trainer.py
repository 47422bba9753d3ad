"""The training loop: epochs, validation, early stopping, checkpoints and resume.

A run directory holds ``config.json``, ``checkpoint.pt`` (everything needed to resume, rewritten
atomically after every epoch), ``best_model.pt`` (weights of the best validation epoch),
``history.json``, ``curves.png``, ``train.log`` and, once finished, ``result.json``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from model.mvcrec import MVCRec
from training.batching import TrainBatcher
from training.config import ExperimentConfig
from training.device import pick_device
from training.evaluation import evaluate
from training.factory import build_augmenter, build_model, build_optimizer
from training.memory import release_freed_memory
from training.pipeline import PreparedData, prepare_data
from training.plots import plot_curves

log = logging.getLogger("training")

SELECTION_METRIC = "NDCG@10"


@dataclass
class RunResult:
    best_epoch: int
    epochs_run: int
    valid: dict[str, float]
    test: dict[str, float]
    sec_per_epoch: float
    device: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Trainer:
    """Trains one :class:`ExperimentConfig` in ``run_dir``."""

    def __init__(self, config: ExperimentConfig, run_dir: Path | str,
                 data: PreparedData | None = None, progress: bool = True) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.progress = progress
        if config.train.num_threads > 0:
            torch.set_num_threads(config.train.num_threads)
        self.device = pick_device(config.train.device)
        if self.device.type == "cpu":
            release_freed_memory()
        _seed_everything(config.train.seed)
        self.data = data if data is not None else prepare_data(config.data)
        self.model: MVCRec = build_model(config.model, self.data.num_items,
                                         config.data.max_len).to(self.device)
        self.adjacency = (self.data.adjacency.to(self.device) if config.model.use_graph_view
                          else None)
        self.optimizer = build_optimizer(self.model, config.train)
        self.batcher = TrainBatcher(self.data.split.train, config.data.max_len,
                                    config.train.batch_size,
                                    build_augmenter(config.model, self.data.num_items))
        self.rng = np.random.default_rng(config.train.seed)
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        self.best_epoch = 0
        self.best_valid: dict[str, float] = {}
        self.stale_epochs = 0

    # --- persistence -------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    @property
    def best_model_path(self) -> Path:
        return self.run_dir / "best_model.pt"

    def save_checkpoint(self) -> None:
        state = {
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "best_epoch": self.best_epoch,
            "best_valid": self.best_valid,
            "stale_epochs": self.stale_epochs,
            "history": self.history,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        _atomic_torch_save(state, self.checkpoint_path)

    def load_checkpoint(self) -> None:
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        # normalised through from_dict, so options added since the checkpoint take defaults
        if ExperimentConfig.from_dict(state["config"]).to_dict() != self.config.to_dict():
            raise ValueError(f"{self.checkpoint_path} was written with a different config; "
                             "use a new run directory or the same config to resume")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = state["epoch"]
        self.best_epoch = state["best_epoch"]
        self.best_valid = state["best_valid"]
        self.stale_epochs = state["stale_epochs"]
        self.history = state["history"]
        self.rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        log.info("resumed %s at epoch %d (best epoch %d)", self.run_dir, self.epoch,
                 self.best_epoch)

    # --- loop ----------------------------------------------------------------------------------

    def fit(self, resume: bool = False) -> RunResult:
        """Train until ``epochs`` or early stop, then test the best validation epoch."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with _log_to_file(self.run_dir / "train.log"):
            return self._fit(resume)

    def _fit(self, resume: bool) -> RunResult:
        (self.run_dir / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
        if resume and self.checkpoint_path.exists():
            self.load_checkpoint()
        log.info("data: %d users, %d items, %d graph edges; device %s",
                 len(self.data.split.train), self.data.num_items, self.data.num_edges,
                 self.device)
        train_cfg = self.config.train
        while self.epoch < train_cfg.epochs and self.stale_epochs < train_cfg.patience:
            self.epoch += 1
            record = self.train_epoch()
            start = time.perf_counter()
            valid = self.evaluate("valid")
            record.update(valid_seconds=time.perf_counter() - start, valid=valid)
            self.history.append(record)
            improved = valid[SELECTION_METRIC] > self.best_valid.get(SELECTION_METRIC, -1.0)
            if improved:
                self.best_epoch, self.best_valid, self.stale_epochs = self.epoch, valid, 0
                _atomic_torch_save(self.model.state_dict(), self.best_model_path)
            else:
                self.stale_epochs += 1
                self._decay_lr_on_plateau()
            self.save_checkpoint()
            self._write_history()
            log.info("epoch %d  loss %.4f  valid NDCG@10 %.4f HR@10 %.4f  (%.1fs train)%s",
                     self.epoch, record["losses"]["loss"], valid["NDCG@10"], valid["HR@10"],
                     record["train_seconds"], "  *best*" if improved else "")
        return self.finish()

    def _decay_lr_on_plateau(self) -> None:
        """Multiply the learning rate by ``lr_decay`` after every ``lr_decay_patience`` epochs
        without a better validation score (the rate lives in the optimizer's state, so a resumed
        run continues with it)."""
        train_cfg = self.config.train
        if train_cfg.lr_decay == 1.0 or self.stale_epochs % train_cfg.lr_decay_patience:
            return
        for group in self.optimizer.param_groups:
            group["lr"] *= train_cfg.lr_decay
        log.info("no better validation for %d epochs: lr %.2e", self.stale_epochs,
                 self.optimizer.param_groups[0]["lr"])

    def train_epoch(self) -> dict[str, Any]:
        self.model.train()
        totals: dict[str, Tensor] = {}  # summed on the device: no host sync per step
        steps = 0
        amp = (torch.autocast("cuda", dtype=torch.bfloat16)
               if self.device.type == "cuda" and self.config.train.amp else nullcontext())
        start = time.perf_counter()
        batches = self.batcher.epoch(self.rng)
        for batch in tqdm(batches, total=len(self.batcher), desc=f"epoch {self.epoch}",
                          disable=not self.progress, leave=False):
            batch = batch.to(self.device)
            with amp:
                losses = self.model.calculate_loss(batch.inputs, batch.targets, self.adjacency,
                                                   batch.augmented, batch.augmented_lengths)
            self.optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            if self.config.train.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                               self.config.train.grad_clip)
            self.optimizer.step()
            for name, value in losses.items():
                totals[name] = totals[name] + value.detach() if name in totals else value.detach()
            steps += 1
        mean_losses = {k: float(v) / steps for k, v in totals.items()}  # waits for the device
        return {"epoch": self.epoch, "train_seconds": time.perf_counter() - start,
                "losses": mean_losses}

    def evaluate(self, split: str) -> dict[str, float]:
        eval_set = self.data.split.valid if split == "valid" else self.data.split.test
        return evaluate(self.model, eval_set, self.adjacency, self.config.data.max_len,
                        self.config.train.eval_batch_size, self.device)

    def finish(self) -> RunResult:
        """Reload the best validation epoch and measure it on the test split once."""
        if self.best_epoch == 0:
            raise RuntimeError("no epoch was trained")
        self.model.load_state_dict(torch.load(self.best_model_path, map_location=self.device))
        test = self.evaluate("test")
        seconds = [h["train_seconds"] for h in self.history]
        result = RunResult(best_epoch=self.best_epoch, epochs_run=self.epoch,
                           valid=self.best_valid, test=test,
                           sec_per_epoch=float(np.median(seconds)) if seconds else 0.0,
                           device=str(self.device))
        (self.run_dir / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
        log.info("best epoch %d  valid NDCG@10 %.4f  test NDCG@10 %.4f HR@10 %.4f",
                 self.best_epoch, self.best_valid["NDCG@10"], test["NDCG@10"], test["HR@10"])
        return result

    def _write_history(self) -> None:
        (self.run_dir / "history.json").write_text(json.dumps(self.history, indent=2))
        plot_curves(self.history, self.run_dir / "curves.png", title=self.config.name)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@contextmanager
def _log_to_file(path: Path) -> Iterator[None]:
    """Copy the training log into the run directory while one run is in progress."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        handler.close()
