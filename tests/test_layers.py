"""No layer imports upward: every `mqt_llava` import, at module level or inside a function.

The package is a stack of layers (README, "Layout"); a module may import its own area and the
areas of lower layers only, never a sibling of its own layer or anything above it. The imports
are read with `ast` from the source files, so lazy imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mqt_llava"

# Bottom to top. Why each sits where it does:
# - model: the ground floor (configuration, connector, modeling, processing, convert, presets);
# - hub (downloads, cards, hub-id resolution) and cli_args (argument types) use only the model;
# - perf (FLOP counter, latency, memory) measures model configs; data generates and reads data;
# - inference (load, ask, encode once / slice per budget, budget policies) counts FLOPs with perf;
# - training, evaluation, serving, visualization: the users of inference and data;
# - pretrained assembles real backbones through the training builder; experiments orchestrate
#   data, training and evaluation;
# - cli: the one entry point; `__main__` runs it for `python -m mqt_llava`.
LAYERS: list[set[str]] = [
    {"model"},
    {"hub", "cli_args"},
    {"perf", "data"},
    {"inference"},
    {"training", "evaluation", "serving", "visualization"},
    {"pretrained", "experiments"},
    {"cli"},
    {"__main__"},
]
LEVEL = {area: level for level, areas in enumerate(LAYERS) for area in areas}
# `mqt_llava/__init__.py` is the facade: it re-exports names by `import_module` strings.
FACADE = "__init__"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path, text: str | None = None) -> list[tuple[str, int]]:
    """The `mqt_llava` modules `path` (or `text`, as if it were at `path`) imports, absolute."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    source = path.read_text(encoding="utf-8") if text is None else text
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{target}.{alias.name}"
                found.append((sub if _is_module(sub) else target, node.lineno))
    return [(name, line) for name, line in found if name.split(".")[0] == "mqt_llava"]


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else FACADE


def _edges() -> list[tuple[str, str, str, int]]:
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _area(_module_name(path))
        for target, line in _imports(path):
            if _area(target) != source:
                edges.append((source, _area(target), str(path.relative_to(PACKAGE.parent)), line))
    return edges


def test_every_area_has_a_layer():
    areas = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()}
    areas = {a for a in areas if (PACKAGE / a).is_dir() and (PACKAGE / a / "__init__.py").exists()}
    areas |= {p.stem for p in PACKAGE.glob("*.py")} - {FACADE}
    assert areas - {"assets"} == set(LEVEL), "add the new area to LAYERS (and the README)"


def test_no_layer_imports_upward_or_sideways():
    bad = [
        f"{where}:{line}: {source} imports {target}"
        for source, target, where, line in _edges()
        if source != FACADE and (target == FACADE or LEVEL[target] >= LEVEL[source])
    ]
    assert bad == []


def test_the_model_layer_imports_nothing_of_ours_but_itself():
    assert [e for e in _edges() if e[0] == "model"] == []


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("from ..cli import budget_list", {"mqt_llava.cli"}),
        ("def f():\n    from mqt_llava.hub.resolve import x", {"mqt_llava.hub.resolve"}),
        ("from mqt_llava import cli_args", {"mqt_llava.cli_args"}),
        ("import mqt_llava.inference.pipeline", {"mqt_llava.inference.pipeline"}),
    ],
)
def test_the_reader_sees_relative_lazy_and_submodule_imports(code, expected):
    """The checker can fail: it finds each form of import, as if written in `perf/`."""
    probe = PACKAGE / "perf" / "_layers_probe.py"
    assert {name for name, _ in _imports(probe, code)} == expected
