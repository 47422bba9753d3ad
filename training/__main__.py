"""Command line of the training job.

    python -m training train --data ../shared/datasets/Beauty.txt --model mvcrec \
        --run-dir runs/beauty-mvcrec [--resume] [--set model.dropout=0.5 ...] \
        [--export artifacts --name beauty]
    python -m training export --run-dir runs/beauty-mvcrec --out artifacts --name beauty
    python -m training synth --out data/demo.csv [--users 2000]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from training.config import PRESETS, ExperimentConfig, preset


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["model.dropout=0.5", "model.fusion=mlp"]`` → typed values (JSON, else string)."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


def build_config(args: argparse.Namespace) -> ExperimentConfig:
    config = (ExperimentConfig.load(args.config) if args.config
              else preset(args.model, args.data))
    overrides = parse_overrides(args.set or [])
    if args.data:
        overrides["data.path"] = args.data
    if args.epochs is not None:
        overrides["train.epochs"] = args.epochs
    if args.device:
        overrides["train.device"] = args.device
    return config.with_overrides(overrides)


def cmd_train(args: argparse.Namespace) -> None:
    from training.export import export_run
    from training.trainer import Trainer

    config = build_config(args)
    trainer = Trainer(config, args.run_dir, progress=not args.no_progress)
    result = trainer.fit(resume=args.resume)
    print(json.dumps(result.to_dict(), indent=2))
    if args.export:
        path = export_run(args.run_dir, args.export, args.name or config.name, data=trainer.data)
        print(f"exported {path}")


def cmd_export(args: argparse.Namespace) -> None:
    from training.export import export_run

    print(f"exported {export_run(args.run_dir, args.out, args.name)}")


def cmd_synth(args: argparse.Namespace) -> None:
    from training.synthetic import SyntheticSpec, generate_sessions, write_event_log

    spec = SyntheticSpec(num_users=args.users, seed=args.seed)
    print(f"wrote {write_event_log(generate_sessions(spec), args.out)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train (and optionally export) one model")
    train.add_argument("--data", help="benchmark .txt or user,item,timestamp .csv")
    train.add_argument("--model", default="mvcrec", choices=sorted(PRESETS))
    train.add_argument("--config", type=Path, help="full ExperimentConfig as JSON")
    train.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="config overrides")
    train.add_argument("--epochs", type=int)
    train.add_argument("--device", help="auto (default), cpu, cuda, cuda:1 ...")
    train.add_argument("--run-dir", type=Path, required=True)
    train.add_argument("--resume", action="store_true", help="continue from checkpoint.pt")
    train.add_argument("--export", type=Path, metavar="ROOT", help="export the best epoch here")
    train.add_argument("--name", help="artifact name (default: the model preset)")
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(func=cmd_train)

    export = commands.add_parser("export", help="export a finished run's best epoch")
    export.add_argument("--run-dir", type=Path, required=True)
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--name", required=True)
    export.set_defaults(func=cmd_export)

    synth = commands.add_parser("synth", help="write a synthetic user,item,timestamp log")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--users", type=int, default=2000)
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=cmd_synth)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args.func(args)


if __name__ == "__main__":
    main()
