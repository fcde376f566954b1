"""The layering rules of the Python package, checked on its source: one importer of the native module, no
import cycle between modules, no module much over 500 lines, and the ways of reaching ``modelkin.compare``
that the function and the package share."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import modelkin

PACKAGE = Path(modelkin.__file__).parent
MAX_LINES = 520


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports when it is imported (module level, outside
    ``if TYPE_CHECKING:``; imports inside functions run later and cannot form an import cycle)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(sub, ast.ImportFrom):
                base = package
                for _ in range(sub.level - 1):
                    base = base.rpartition(".")[0]
                target = (f"{base}.{sub.module}" if sub.module else base) if sub.level else (sub.module or "")
                for alias in sub.names:
                    full = f"{target}.{alias.name}"
                    out.add(full if full in modules else target)
            elif isinstance(sub, ast.Import):
                out.update(a.name for a in sub.names)
    return {m for m in out if m in modules and m != name}


def test_only_the_engine_module_imports_the_native_module() -> None:
    importers = sorted(
        name
        for name, path in _modules().items()
        if any(
            isinstance(n, (ast.Import, ast.ImportFrom))
            and (
                "_modelkin" in (getattr(n, "module", None) or "")
                or any("_modelkin" in a.name for a in n.names)
            )
            for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    )
    assert importers == ["modelkin._engine"]


def test_no_module_is_much_over_500_lines() -> None:
    long = {name: n for name, p in _modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_modules_import_each_other_without_a_cycle() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    # A module imported while its package's __init__ runs may import its own package: that edge is
    # the parent being imported first, as Python always does, not a cycle.
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        seen[m] = 1
        for d in sorted(graph[m]):
            assert seen.get(d) != 1, " → ".join([*path, m, d])
            if d not in seen:
                visit(d, [*path, m])
        seen[m] = 2

    for m in sorted(graph):
        if m not in seen:
            visit(m, [])


def test_compare_is_the_function_and_the_package_both() -> None:
    code = (
        "import modelkin, modelkin.compare.weights, sys\n"
        "from modelkin.compare import COMPARE_SCHEMA, CompareResult, compare_fingerprints\n"
        "from modelkin.compare.weights import compare_checkpoints\n"
        "assert callable(modelkin.compare) and modelkin.compare.__module__ == 'modelkin.compare'\n"
        "assert sys.modules['modelkin.compare'].weights.compare_checkpoints is compare_checkpoints\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
