"""The README's shell commands refer to real things (Make targets, modules and their flags,
files, settings, Dockerfile arguments, Compose services); its curl commands are run against the
real app; its configuration table lists every setting with its default."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import runpy
import shlex
import subprocess
import sys
from typing import Any

import pytest
import yaml

from service.config import Settings
from tests.deploy.conftest import ROOT
from training.__main__ import parse_overrides
from training.config import preset

README = (ROOT / "README.md").read_text()
SETTINGS = Settings.model_fields
MAKE_TARGETS = set(re.findall(r"^([\w.-]+):", (ROOT / "Makefile").read_text(), re.M))
TORCH_VERSION = re.findall(r"TORCH_VERSION \?= (\S+)", (ROOT / "Makefile").read_text())[0]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
IGNORED = {line.strip("/") for line in (ROOT / ".gitignore").read_text().splitlines()
           if line.startswith("/")}
PROGRAMS = ("make ", ".venv/bin/python ", "python ", "curl ", "docker ", "kubectl ",
            ".venv/bin/pip ", "export ")
# options of docker/kubectl/pip that take a value
VALUE_OPTIONS = {"-t", "-f", "-e", "-v", "-p", "-k", "--build-arg", "--index-url"}


def readme_commands(markdown: str) -> list[list[str]]:
    """Every command of the README's bash code blocks (continuations joined, comments dropped),
    and inline code spans that start with a known program."""
    lines = []
    fence = re.compile(r"^ *```(\w*)\n(.*?)^ *```", re.M | re.S)
    for language, block in fence.findall(markdown):
        if language in ("bash", "sh"):
            lines += block.replace("\\\n", " ").splitlines()
    for span in re.findall(r"`([^`]+)`", fence.sub("", markdown)):
        span = " ".join(span.split())
        if span.startswith(PROGRAMS):
            lines.append(span)
    commands = dict.fromkeys(tuple(shlex.split(line, comments=True)) for line in lines)
    return [list(tokens) for tokens in commands if tokens]


COMMANDS = readme_commands(README)
CURL = [tokens for tokens in COMMANDS if tokens[0] == "curl"]


def options(tokens: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """``(option, value)`` pairs and the positional arguments."""
    pairs, positional = [], []
    items = iter(tokens)
    for token in items:
        if token in VALUE_OPTIONS:
            pairs.append((token, next(items)))
        elif token.startswith("-"):
            pairs.append((token, ""))
        else:
            positional.append(token)
    return pairs, positional


def check_setting(assignment: str) -> None:
    name = assignment.split("=", 1)[0]
    assert name.lower() in SETTINGS, f"{name} is not a setting of service/config.py"


def check_paths(tokens: list[str]) -> None:
    """Repository paths named in a command exist (outputs in .gitignore'd folders and paths
    outside the repository are not checked)."""
    for token in tokens:
        if re.fullmatch(r"[\w-][\w.-]*/[\w./-]*", token) and token.split("/")[0] not in IGNORED:
            assert (ROOT / token).exists(), f"{token}: no such file in the repository"


def cli_help(monkeypatch: pytest.MonkeyPatch, module: str, args: list[str]) -> str:
    """What ``python -m module args --help`` prints: the help of the (sub)command that ``args``
    select, after argparse has checked the options before ``--help`` (choices included)."""
    monkeypatch.setattr(sys, "argv", [module, *args, "--help"])
    spec = importlib.util.find_spec(module)
    package = spec is not None and spec.submodule_search_locations is not None
    # run afresh, as `python -m` does (and without runpy's warning about a loaded module)
    monkeypatch.delitem(sys.modules, f"{module}.__main__" if package else module, raising=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        runpy.run_module(module, run_name="__main__")
    assert exit_.value.code == 0, f"python -m {module} {' '.join(args)}: rejected"
    return out.getvalue()


def check_python(monkeypatch: pytest.MonkeyPatch, tokens: list[str]) -> None:
    assert tokens[1] == "-m", "run modules with -m"
    module, args = tokens[2], [t for t in tokens[3:] if t != "..."]
    assert importlib.util.find_spec(module) is not None, f"python -m {module}: no such module"
    if not args:
        return
    text = cli_help(monkeypatch, module, args)
    for flag in (a.split("=")[0] for a in args if a.startswith("--")):
        assert re.search(rf"(?<![\w-]){flag}(?![\w-])", text), (
            f"python -m {module}: no option {flag}")
    if "--set" in args:
        values = args[args.index("--set") + 1:]
        overrides = parse_overrides([v for v in values[:next(
            (i for i, v in enumerate(values) if v.startswith("--")), len(values))]])
        preset("mvcrec").with_overrides(overrides)  # a misspelt key raises KeyError


def check_docker(tokens: list[str]) -> None:
    pairs, positional = options(tokens[1:])
    values = dict(pairs)
    if positional[0] == "build":
        assert positional[1:] == ["."] and (ROOT / "Dockerfile").is_file()
        assert values["-t"] in ("mvcrec:cuda", "mvcrec:cpu")
        for name, _, value in (v.partition("=") for o, v in pairs if o == "--build-arg"):
            assert f"ARG {name}" in DOCKERFILE, f"the Dockerfile has no ARG {name}"
            assert name != "VARIANT" or value == values["-t"].split(":")[1]
        return
    assert positional[0] == "compose"
    compose = yaml.safe_load((ROOT / values["-f"]).read_text())
    if positional[1] == "run":
        service = compose["services"][positional[2]]
        for volume in (v for o, v in pairs if o == "-v"):
            target = volume.split(":")[1]
            assert any(target.startswith(mount.split(":")[1]) for mount in service["volumes"])
    else:
        assert positional[1:] == ["up"]


def check_kubectl(tokens: list[str]) -> None:
    pairs, positional = options(tokens[1:])
    assert positional[0] in ("apply", "replace")
    for option, value in pairs:
        if option == "-k":
            assert (ROOT / value / "kustomization.yaml").is_file()
        elif option == "-f":
            assert (ROOT / value).is_file()


def check_pip(tokens: list[str]) -> None:
    _, positional = options(tokens[1:])
    project = (ROOT / "pyproject.toml").read_text()
    assert positional[0] in ("install", "uninstall")
    for package in positional[1:]:
        name, _, version = package.partition("==")
        assert f'"{name}' in project, f"{name} is not a dependency in pyproject.toml"
        assert name != "torch" or version == TORCH_VERSION, "the torch version the tests use"


@pytest.mark.parametrize("tokens", COMMANDS, ids=[" ".join(c)[:70] for c in COMMANDS])
def test_command_refers_to_something_real(tokens: list[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = list(tokens)
    while re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):
        check_setting(tokens.pop(0))
    check_paths(tokens)
    program = tokens[0]
    if program == "make":
        assert set(tokens[1:]) <= MAKE_TARGETS, f"no Make target {set(tokens[1:]) - MAKE_TARGETS}"
    elif program == "export":
        for assignment in tokens[1:]:
            check_setting(assignment)
    elif program in ("python", ".venv/bin/python"):
        check_python(monkeypatch, tokens)
    elif program == "docker":
        check_docker(tokens)
    elif program == "kubectl":
        check_kubectl(tokens)
    elif program == ".venv/bin/pip":
        check_pip(tokens)
    elif program == "git":
        assert tokens[1:3] == ["worktree", "add"], f"unexpected git command {tokens}"
    elif program != "curl":  # run by test_curl_command_answers
        pytest.fail(f"no rule for {program!r}: teach tests/deploy/test_readme.py what it needs")


def test_readme_has_the_commands_it_promises() -> None:
    programs = {c[0] for c in COMMANDS}
    assert {"make", "curl", "docker", "kubectl", ".venv/bin/python"} <= programs
    assert ["make", "run"] in COMMANDS and ["make", "test"] in COMMANDS
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("tokens", CURL, ids=[" ".join(c)[:70] for c in CURL])
def test_curl_command_answers(tokens: list[str], live_server: str) -> None:
    command = [t.replace("localhost:8000", live_server.removeprefix("http://")) for t in tokens]
    result = subprocess.run([*command, "--fail", "--max-time", "20"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    if not command[-1].endswith("/metrics"):
        body: dict[str, Any] = json.loads(result.stdout)
        assert body, result.stdout


def _default(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_configuration_table_lists_every_setting_with_its_default() -> None:
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", section, re.M)
    table = {name.lower(): cell.strip() for name, cell in rows}
    assert len(table) == len(rows), "one row per setting"
    missing, unknown = set(SETTINGS) - set(table), set(table) - set(SETTINGS)
    assert not missing and not unknown, f"README table: missing {missing}, unknown {unknown}"
    for name, field in SETTINGS.items():
        assert table[name].split()[0].strip("`") == _default(field.default), name


def test_links_point_at_files() -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[\w-]+)?\)", README):
        if not target.startswith(("http://", "https://", "../")):
            assert (ROOT / target).exists(), f"README links to missing {target}"
