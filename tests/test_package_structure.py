"""The package's shape: no import cycle between its modules, every module importable on its own, light
imports stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "text4seg"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _top_level_imports(path: Path, name: str) -> set[str]:
    """text4seg modules imported when ``name`` is imported: module-level imports only (imports inside
    functions run on use and cannot form an import-time cycle)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in tree.body:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def test_module_import_graph_has_no_cycle():
    graph = {name: _top_level_imports(path, name) for name, path in MODULES.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert graph["text4seg.segmenter"] and "text4seg.segmenter" not in graph["text4seg.decoding.backend"]


@pytest.mark.slow
def test_each_module_imports_alone_in_a_fresh_interpreter():
    """One interpreter per module (a cycle hidden by import order shows up only when a module comes first)."""
    optional_roots = {"text4seg.training.callbacks", "text4seg.training.trainer", "text4seg.training.recipe"}
    failures = []
    for name in MODULES:
        if name.endswith("__main__"):
            continue
        code = f"import importlib; importlib.import_module({name!r})"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
        if done.returncode and not (name in optional_roots and "No module named 'peft'" in done.stderr):
            last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            failures.append(f"{name}: {last}")
    assert not failures, "\n".join(failures)


def test_light_imports_do_not_import_torch():
    code = ("import sys\n"
            "import text4seg, text4seg.training, text4seg.cli, text4seg.options, text4seg.presets, "
            "text4seg.items, text4seg.descriptors, text4seg.metrics, text4seg.datasets, text4seg.modeling, "
            "text4seg.decoding, text4seg.refine, text4seg.training.config\n"
            "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"


def test_no_argparse_outside_the_command_layer():
    offenders = [name for name, path in MODULES.items()
                 if not name.startswith("text4seg.cli") and "argparse" in path.read_text(encoding="utf-8")]
    assert offenders == []
