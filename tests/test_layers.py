"""The package's shape: no import circle, imports point up the stack, small folders."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "prunelab"
#: bottom to top (design.md); a module may import only its own layer or lower ones
LAYERS = [
    {"errors", "_version", "_hashing", "_io", "_progress", "device", "schema", "registry", "_hf"},
    {"data"},
    {
        "models",
        "prunable",
        "masks",
        "mask_path",
        "_evaluate",
        "_model_errors",
        "_topk",
        "train_config",
        "train",
        "checkpoint",
    },  # fmt: skip
    {"curvature"},
    {"scores"},
    {"procedures"},
    {"limits"},
    {"experiments"},
    {"cli", "__init__", "__main__"},
]


def _module(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """Every ``prunelab`` module -> the prunelab modules it imports (anywhere in the file)."""
    modules = {_module(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                base = node.module
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in modules else base)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    found = [i for i, layer in enumerate(LAYERS) if top in layer]
    assert found, f"{module}: add {top!r} to a layer of LAYERS in {__file__}"
    return found[0]


def test_no_import_circle():
    graph = _imports()
    # a package's __init__ re-exports its submodules: an edge pkg -> pkg.sub is not a use
    uses = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(uses[node]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep] if dep in stack else [node, dep]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for module in sorted(uses):
        if module not in state:
            visit(module, [module])


def test_imports_point_up_the_stack():
    bad = [
        f"{m} imports {d}" for m, deps in _imports().items() for d in deps if _layer(d) > _layer(m)
    ]
    assert not bad, bad


def test_experiments_folders_stay_small():
    for folder in [PKG / "experiments", *(PKG / "experiments").iterdir()]:
        if folder.is_dir() and not folder.name.startswith("__"):
            modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
            assert len(modules) <= 8, (folder, [p.name for p in modules])
