from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from training.export import export_run


@pytest.fixture
def tiny_serving_inputs(tmp_path: Path, trained_run: Path, prepared: Any) -> tuple[Path, Path]:
    """The tiny trained model exported as ``tiny`` into ``artifacts/``, and its training
    sessions as external ids in ``sessions.json`` (what the load generator replays)."""
    artifacts = tmp_path / "artifacts"
    export_run(trained_run, artifacts, "tiny", data=prepared)
    item_ids = prepared.interactions.item_ids
    sessions = tmp_path / "sessions.json"
    sessions.write_text(json.dumps([[item_ids[i] for i in sequence]
                                    for sequence in prepared.interactions.sequences]))
    return artifacts, sessions
