"""Training cost per epoch, SASRec vs MVCrec, measured side by side in one run.

Each measurement is a fresh subprocess (so its peak memory is its own) training one full epoch
on the dataset (no evaluation). On the CPU it is pinned to one core with one torch thread and
reports peak RSS; on CUDA (``--device cuda``, bf16 autocast as in training) it times the second
epoch, after a warm-up one, and reports peak GPU memory. Models alternate, and the median over
repeats is reported with the ratio MVCrec / SASRec.

    python -m bench.train_speed --dataset Beauty --core 1 --repeats 3
    python -m bench.train_speed --dataset Beauty --device cuda --repeats 2   # train_speed_cuda.*
    python -m bench.train_speed --mvcrec-overrides '{"model.share_transformer": true}'
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.machine import machine_info

RESULTS_DIR = Path("docs/results")
MODELS = ("sasrec", "mvcrec")


def measure_one(model: str, data_path: str, seed: int, device: str,
                overrides: dict[str, Any]) -> dict[str, Any]:
    """Runs in the child: build everything, time one training epoch, report peak memory."""
    import numpy as np
    import torch

    from training.config import preset
    from training.trainer import Trainer

    torch.set_num_threads(1)
    config = preset(model, data_path).with_overrides(overrides)
    config.train.device = device
    config.train.seed = seed
    trainer = Trainer(config, Path("runs/speed") / model, progress=False)
    trainer.rng = np.random.default_rng(seed)
    if device == "cuda":
        trainer.train_epoch()  # warm-up: CUDA context, kernels, allocator
        torch.cuda.reset_peak_memory_stats()
    seconds = trainer.train_epoch()["train_seconds"]
    if device == "cuda":
        return {"model": model, "seconds": seconds,
                "peak_mib": torch.cuda.max_memory_allocated() / 2**20}
    return {"model": model, "seconds": seconds,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run(dataset_path: Path, core: int, repeats: int, device: str,
        overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    samples: dict[str, list[dict[str, Any]]] = {m: [] for m in MODELS}
    pin = ["taskset", "-c", str(core)] if device == "cpu" else []
    for repeat in range(repeats):
        for model in MODELS:
            out = subprocess.run(
                [*pin, sys.executable, "-m", "bench.train_speed", "--child", model,
                 "--data", str(dataset_path), "--seed", str(repeat), "--device", device,
                 "--overrides", json.dumps(overrides.get(model, {}))],
                check=True, capture_output=True, text=True)
            sample = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"repeat {repeat} {model}: {sample['seconds']:.1f} s, "
                  f"{sample['peak_mib']:.0f} MiB", flush=True)
            samples[model].append(sample)
    summary = {m: {"sec_per_epoch_median": statistics.median(s["seconds"] for s in samples[m]),
                   "peak_mib_max": max(s["peak_mib"] for s in samples[m]),
                   "samples": samples[m]} for m in MODELS}
    ratio = (summary["mvcrec"]["sec_per_epoch_median"]
             / summary["sasrec"]["sec_per_epoch_median"])
    return {"dataset": dataset_path.stem, "device": device, "overrides": overrides,
            "core": core if device == "cpu" else None, "threads": 1, "repeats": repeats,
            "machine": machine_info(), "models": summary, "ratio_mvcrec_over_sasrec": ratio}


def _repeat_table(result: dict[str, Any]) -> list[str]:
    """Every repeat's seconds per epoch, side by side (a noisy machine shows here)."""
    samples = {model: [s["seconds"] for s in stats["samples"]]
               for model, stats in result["models"].items()}
    if set(samples) != set(MODELS):
        return []
    machine = result.get("machine", {})
    lines = [f"Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores.", "",
             "| repeat | sasrec s | mvcrec s | mvcrec / sasrec |", "|---|---|---|---|"]
    for repeat, (sasrec, mvcrec) in enumerate(zip(samples["sasrec"], samples["mvcrec"],
                                                  strict=False)):
        lines.append(f"| {repeat} | {sasrec:.1f} | {mvcrec:.1f} | {mvcrec / sasrec:.2f} |")
    return lines


def write(result: dict[str, Any], results_dir: Path) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    cuda = result["device"] == "cuda"
    stem = "train_speed_cuda" if cuda else "train_speed"
    (results_dir / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    where = (f"CUDA, {result['machine']['device']}, bf16 autocast" if cuda
             else "one core, one thread")
    lines = [f"# Training cost per epoch on {result['dataset']} ({where})", "",
             f"Generated by `python -m bench.train_speed --device {result['device']}`; medians of "
             f"{result['repeats']} alternating fresh-process runs, one full epoch each"
             f"{' (the second, after a warm-up epoch)' if cuda else ''}.", "",
             f"| model | s / epoch (median) | peak {'GPU memory' if cuda else 'RSS'} (MiB) |",
             "|---|---|---|"]
    for model, stats in result["models"].items():
        lines.append(f"| {model} | {stats['sec_per_epoch_median']:.1f} | "
                     f"{stats['peak_mib_max']:.0f} |")
    lines += ["", f"MVCrec / SASRec: **{result['ratio_mvcrec_over_sasrec']:.2f}×** (ratio of the "
              "medians)", "", *_repeat_table(result), ""]
    overrides = result.get("overrides", {}).get("mvcrec")
    if overrides:
        lines += [f"MVCrec configuration: preset with `{json.dumps(overrides)}`.", ""]
    (results_dir / f"{stem}.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="Beauty")
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--core", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--mvcrec-overrides", type=json.loads, default={},
                        help='MVCrec config overrides, JSON: {"model.share_transformer": true}')
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    parser.add_argument("--overrides", type=json.loads, default={}, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_one(args.child, args.data, args.seed, args.device,
                                     args.overrides)))
        return
    result = run(args.datasets / f"{args.dataset}.txt", args.core, args.repeats, args.device,
                 {"mvcrec": args.mvcrec_overrides})
    write(result, args.results)
    print(json.dumps({m: s["sec_per_epoch_median"] for m, s in result["models"].items()}))


if __name__ == "__main__":
    main()
