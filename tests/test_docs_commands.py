"""Every `mqt-llava` command printed in README.md and docs/*.md runs (or parses) as printed.

Commands come from code blocks (`$ ` prompts and backslash continuations included) and inline
code spans. A synopsis (placeholders such as DIR or PATH, `[optional]` parts) must name only
options its subcommand has. A concrete command is run, in a scratch folder that sees the
repository's files, when it is cheap (seconds on a CPU); the others (training, whole evaluations,
servers, benchmarks of minutes) must parse, values included, exactly as printed.
"""

from __future__ import annotations

import io
import re
import shlex
import shutil
from pathlib import Path

import pytest

from mqt_llava.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Subcommands cheap enough to run here on the bundled model or the converted parity fixture
# (`flops --preset mqt-llava-7b` counts a 7B model: about a minute here, so it only parses).
RUN = {"convert", "ask", "gradcam", "attention", "chat"}
SUBCOMMANDS = set(build_parser()._subparsers._group_actions[0].choices)
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(\.\w+)?(\|.*)?$|\.\.\.|…|^\[|\]$|\|")


def _commands() -> list[tuple[str, str]]:
    """(where, command) for every `mqt-llava ...` printed in the docs, each command once.

    Bare names in prose (`mqt-llava score`) and output lines (`mqt-llava chat: M=64`) are not
    commands: a command has an option or an argument beyond its subcommand's name.
    """
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for language, block in re.findall(r"```([a-z]*)\n(.*?)```", text, re.S):
            if language == "text":  # a program's output, not commands
                continue
            block = re.sub(r"\\\n\s*", " ", block)  # backslash continuations
            for line in block.splitlines():
                line = re.sub(r"^\$ ", "", line.strip())
                if line.startswith(("mqt-llava ", ".venv/bin/mqt-llava ")):
                    found.append((doc.name, line))
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        for span in re.findall(r"`((?:\.venv/bin/)?mqt-llava [^`]+)`", prose, re.S):
            found.append((doc.name, " ".join(span.split())))
    unique = {}
    for where, command in found:
        argv = shlex.split(command, comments=True)[1:]
        named = argv[:2] if argv and argv[0] in ("data", "experiment", "pretrained") else argv[:1]
        if argv and argv[0] in SUBCOMMANDS and len(argv) > len(named):
            unique.setdefault(command, where)
    return [(where, command) for command, where in unique.items()]


COMMANDS = _commands()


def _argv(command: str) -> list[str]:
    return shlex.split(command, comments=True)[1:]


def _is_synopsis(argv: list[str]) -> bool:
    return any(PLACEHOLDER.search(arg) for arg in argv)


def _subparser(argv: list[str]):
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    sub = action.choices[argv[0]]
    nested = [a for a in sub._actions if getattr(a, "choices", None) and a.dest != "help"]
    if nested and isinstance(nested[0].choices, dict) and len(argv) > 1:
        sub = nested[0].choices.get(argv[1], sub)
    return sub


def test_the_docs_print_commands():
    assert len(COMMANDS) > 30
    concrete = [c for _, c in COMMANDS if not _is_synopsis(_argv(c))]
    assert {_argv(c)[0] for c in concrete} >= RUN


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[c[:70] for _, c in COMMANDS])
def test_printed_command_parses(where, command, tmp_path, monkeypatch, capsys):
    argv = _argv(command)
    if _is_synopsis(argv):  # every option it shows exists
        known = {s for a in _subparser(argv)._actions for s in a.option_strings}
        shown = {a.split("=")[0].strip("[]") for a in argv if a.lstrip("[").startswith("--")}
        assert shown <= known, f"{where}: {command}: unknown options {shown - known}"
        return
    monkeypatch.chdir(ROOT)
    args = build_parser().parse_args(argv)  # values are checked while parsing
    assert args.command == argv[0]


def _workdir(tmp_path: Path) -> Path:
    """A scratch folder with the repository's inputs linked in; outputs land in it."""
    for name in ("tests", "mqt_llava", "docs"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = _workdir(tmp_path_factory.mktemp("docs-commands"))
    # `build/fixture-model`, as the README's first command writes it.
    out = str(work / "build/fixture-model")
    assert main(["convert", "tests/data/original-tiny/checkpoint", out]) == 0
    return work


# Commands that name the released model on the hub need the network, and those that read a
# long training run's output (`runs/...`) need that run: they only parse here (tests/hub runs
# the hub commands against a local hub cache).
NOT_HERE = ("gordonhu/", "--model runs/")

RUNNABLE = [
    (w, c)
    for w, c in COMMANDS
    if not _is_synopsis(_argv(c))
    and _argv(c)[0] in RUN
    and "--ship" not in c
    and not any(part in c for part in NOT_HERE)
]


@pytest.mark.parametrize(("where", "command"), RUNNABLE, ids=[c[:70] for _, c in RUNNABLE])
def test_cheap_printed_command_runs(where, command, workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    argv = _argv(command)
    if argv[0] == "convert":  # the docs convert into a fresh folder (a full one is refused)
        shutil.rmtree(workdir / argv[2], ignore_errors=True)
    if argv[0] == "chat":  # one question, then the end of input
        question = "What colour is the square? Answer the question using a single word or phrase."
        monkeypatch.setattr("sys.stdin", io.StringIO(question + "\n"))
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 0, f"{where}: {command}\n{captured.err}"
    if argv[0] == "chat":  # the default model answers with the default settings
        answer = captured.out.split("assistant [")[1].split("]> ")[1].splitlines()[0]
        assert answer.strip(), captured.out
