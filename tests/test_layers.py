"""The layer order of docs/architecture.md: no module of ``vla`` imports a higher layer.

Every module under ``vla/`` is parsed (not imported) and every import in it counts, at module
level or inside a function. :data:`LAYERS` is the one table of the order, lowest first; a
module belongs to the entry with the longest matching dotted prefix (``vla`` itself matches
only the package's ``__init__``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vla"

#: Lowest first. A module imports only from its own layer or lower ones.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("vla", "vla.assets", "vla.compat", "vla.installed", "vla.jsonfile",
                    "vla.resources", "vla.trajectory")),
    ("decisions", ("vla.meta_action", "vla.reasoning", "vla.scoring", "vla.metrics",
                   "vla.policy")),
    ("simulation", ("vla.sim", "vla.render")),
    ("data", ("vla.data", "vla.convert")),
    ("model", ("vla.model",)),
    ("references and records", ("vla.reference", "vla.traces")),
    ("serving", ("vla.serving", "vla.policy_factory", "vla.predict")),
    ("evaluation", ("vla.evaluation",)),
    ("training", ("vla.training",)),
    ("reinforcement learning", ("vla.rl",)),
    ("trace tools", ("vla.trace_tools",)),
    ("entry points and analysis", ("vla.analysis", "vla.cli", "vla.cli_reference", "vla.demo",
                                   "vla.demo_report")),
)
LAYER_OF = {prefix: rank for rank, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(name: str) -> int | None:
    """The rank of the longest table entry that is ``name`` or a dotted prefix of it."""
    if name == "vla":
        return LAYER_OF["vla"]
    parts = name.split(".")
    for n in range(len(parts), 1, -1):
        rank = LAYER_OF.get(".".join(parts[:n]))
        if rank is not None:
            return rank
    return None


def imported_names(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """``(line, module)`` of every ``vla`` import in the file, relative ones resolved;
    ``from A import b`` gives ``A.b`` when ``b`` is a submodule, else ``A``."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package.pop()
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[:len(package) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out += [(node.lineno, _module_or_package(base, alias.name, root))
                    for alias in node.names]
    return [(line, name) for line, name in dict.fromkeys(out)
            if name == "vla" or name.startswith("vla.")]


def _module_or_package(package: str, name: str, root: Path) -> str:
    """``package.name`` when ``name`` is a submodule of ``package`` under ``root``, else
    ``package`` (``name`` is then something the package defines)."""
    path = root.joinpath(*package.split("."), name)
    if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
        return f"{package}.{name}"
    return package


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    missing = [module_name(p) for p in MODULES if layer_of(module_name(p)) is None]
    assert not missing, (f"modules without a layer: {missing}; add each to LAYERS in "
                         f"tests/test_layers.py and to docs/architecture.md")


def test_no_module_imports_a_higher_layer():
    violations = []
    for path in MODULES:
        own = layer_of(module_name(path))
        if own is None:
            continue
        for line, name in imported_names(path):
            target = layer_of(name)
            if target is not None and target > own:
                violations.append(
                    f"{module_name(path)} imports higher-layer module {name} "
                    f"({path.relative_to(ROOT)}:{line}: layer {LAYERS[own][0]!r} < "
                    f"{LAYERS[target][0]!r})")
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize("name, layer", [
    ("vla", "foundation"), ("vla.trajectory.codecs.kmeans", "foundation"),
    ("vla.model.parser", "model"), ("vla.cli", "entry points and analysis"),
    ("vla.meta_action.MetaAction", "decisions")])
def test_layer_of_takes_the_longest_prefix(name, layer):
    assert LAYERS[layer_of(name)][0] == layer


def test_relative_and_function_level_imports_count(tmp_path):
    for folder in ("trajectory", "model"):
        (tmp_path / "vla" / folder).mkdir(parents=True)
    (tmp_path / "vla" / "trajectory" / "types.py").write_text("")
    (tmp_path / "vla" / "model" / "parser.py").write_text("")
    module = tmp_path / "vla" / "trajectory" / "probe.py"
    module.write_text("from . import types\n\ndef f():\n    from vla.model import parser\n")
    assert imported_names(module, tmp_path) == [(1, "vla.trajectory.types"),
                                                (4, "vla.model.parser")]


def test_the_architecture_document_names_every_layer():
    text = (ROOT / "docs" / "architecture.md").read_text()
    for rank, (name, prefixes) in enumerate(LAYERS):
        assert f"{rank}. {name}" in text, f"docs/architecture.md lacks the layer '{rank}. {name}'"
        for prefix in prefixes:
            assert f"`{prefix}`" in text, f"docs/architecture.md does not place `{prefix}`"
