import json

import pytest
import torch

from tests.conftest import tiny_config
from training.config import ExperimentConfig
from training.evaluation import rank_metrics, target_ranks
from training.trainer import Trainer


def test_finished_run_writes_its_files(trained_run):
    for name in ("config.json", "checkpoint.pt", "best_model.pt", "history.json", "curves.png",
                 "result.json", "train.log"):
        assert (trained_run / name).exists(), name
    result = json.loads((trained_run / "result.json").read_text())
    assert set(result["test"]) == {"HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20"}
    history = json.loads((trained_run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert result["best_epoch"] == max(history, key=lambda h: h["valid"]["NDCG@10"])["epoch"]


def test_training_beats_popularity_ranking(trained_run, prepared):
    """The synthetic chains are learnable: a few tiny epochs clearly beat most-popular."""
    valid = prepared.split.valid
    scores = torch.from_numpy(prepared.popularity).float().repeat(len(valid.targets), 1)
    ranks = target_ranks(scores, torch.from_numpy(valid.targets), valid.histories)
    popular = rank_metrics(ranks.numpy())
    result = json.loads((trained_run / "result.json").read_text())
    assert result["valid"]["HR@10"] > 1.5 * popular["HR@10"]


def test_resume_continues_exactly_where_it_stopped(tmp_path, event_log, prepared):
    straight = Trainer(tiny_config("mvcrec", event_log, epochs=3), tmp_path / "a", data=prepared,
                       progress=False).fit()
    Trainer(tiny_config("mvcrec", event_log, epochs=2), tmp_path / "b", data=prepared,
            progress=False).fit()
    # same config as the straight run, resumed from the 2-epoch checkpoint
    config = tiny_config("mvcrec", event_log, epochs=3)
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    state["config"] = config.to_dict()
    torch.save(state, tmp_path / "b" / "checkpoint.pt")
    resumed = Trainer(config, tmp_path / "b", data=prepared, progress=False).fit(resume=True)
    assert resumed.epochs_run == 3
    assert resumed.valid == pytest.approx(straight.valid, abs=1e-6)
    assert resumed.test == pytest.approx(straight.test, abs=1e-6)


def test_resume_refuses_a_different_config(tmp_path, event_log, prepared, trained_run):
    other = tiny_config("mvcrec", event_log)
    other.model.dropout = 0.5
    with pytest.raises(ValueError, match="different config"):
        Trainer(other, trained_run, data=prepared, progress=False).fit(resume=True)


def test_early_stopping_respects_patience(tmp_path, event_log, prepared):
    config = tiny_config("sasrec", event_log, epochs=50, patience=1, lr=0.0)
    result = Trainer(config, tmp_path, data=prepared, progress=False).fit()
    assert result.epochs_run == 2  # lr 0: no improvement after epoch 1


def test_misspelt_override_is_an_error(event_log):
    with pytest.raises(KeyError, match="droput"):
        tiny_config("mvcrec", event_log).with_overrides({"model.droput": 0.1})
    with pytest.raises(ValueError, match="unknown ModelConfig keys"):
        ExperimentConfig.from_dict({"model": {"droput": 0.1}})


def test_lr_decays_after_every_lr_decay_patience_stale_epochs(tmp_path, event_log, prepared):
    config = tiny_config("sasrec", event_log, lr=1e-3, lr_decay=0.5, lr_decay_patience=2)
    trainer = Trainer(config, tmp_path, data=prepared, progress=False)
    rates = []
    for stale in range(1, 6):
        trainer.stale_epochs = stale
        trainer._decay_lr_on_plateau()
        rates.append(trainer.optimizer.param_groups[0]["lr"])
    assert rates == pytest.approx([1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4])


def test_graph_weight_decay_decays_the_graph_table_alone(tmp_path, event_log, prepared):
    """With zero gradients an AdamW step only decays: the graph view's own table (and its mask
    row) by ``lr * graph_weight_decay``, every other parameter by ``lr * weight_decay``."""
    config = tiny_config("mvcrec", event_log, lr=0.1, weight_decay=0.0, graph_weight_decay=2.0)
    trainer = Trainer(config, tmp_path, data=prepared, progress=False)
    model = trainer.model
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    trainer.optimizer.step()
    graph = {"graph_table.weight", "graph_mask"}
    for name, p in model.named_parameters():
        factor = 1 - 0.1 * 2.0 if name in graph else 1.0
        torch.testing.assert_close(p.detach(), before[name] * factor, msg=name)


def test_without_graph_weight_decay_one_decay_applies_to_all(tmp_path, event_log, prepared):
    config = tiny_config("mvcrec", event_log, weight_decay=0.3)
    groups = Trainer(config, tmp_path, data=prepared, progress=False).optimizer.param_groups
    assert [g["weight_decay"] for g in groups] == [0.3]
