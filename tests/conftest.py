"""Shared fixtures: a tiny synthetic event log, its prepared data, one trained tiny run, and the
machine's Redis server."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
import torch

from training.config import ExperimentConfig, preset
from training.pipeline import PreparedData, prepare_data
from training.synthetic import SyntheticSpec, generate_sessions, write_event_log

torch.set_num_threads(1)

REDIS_URL = "redis://127.0.0.1:6379/0"

TINY_SPEC = SyntheticSpec(num_users=300, num_categories=5, items_per_category=12, min_length=4,
                          max_length=14, seed=1)


def tiny_config(model: str, data_path: Path | str, **train: object) -> ExperimentConfig:
    """A small but complete config: every part of the model is on, only sizes are small."""
    config = preset(model, str(data_path), dim=16, ffn_dim=32)
    config.data.max_len = 10
    config.train.epochs = 2
    config.train.batch_size = 64
    config.train.eval_batch_size = 128
    config.train.device = "cpu"
    for key, value in train.items():
        setattr(config.train, key, value)
    return config


@pytest.fixture(scope="session")
def event_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "events.csv"
    return write_event_log(generate_sessions(TINY_SPEC), path)


@pytest.fixture(scope="session")
def prepared(event_log: Path) -> PreparedData:
    return prepare_data(tiny_config("mvcrec", event_log).data)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, event_log: Path,
                prepared: PreparedData) -> Path:
    """A finished 4-epoch MVCrec run directory (real training, real evaluation)."""
    from training.trainer import Trainer

    run_dir = tmp_path_factory.mktemp("run")
    config = tiny_config("mvcrec", event_log, epochs=4, lr=3e-3)
    Trainer(config, run_dir, data=prepared, progress=False).fit()
    return run_dir


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared Redis server of the test machine (``.ci/run`` starts one); tests that need it
    skip if it does not answer."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        pytest.skip(f"no Redis server at {REDIS_URL} ({error}); start one to run these tests")
    return REDIS_URL
