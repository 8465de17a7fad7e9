"""Fail on an import circle inside the package, or an import that runs up its layers: every import counts, at
the top of a module or inside a function (a lazy import is still a dependency). Prints each; exit 1 if any.

Layers, bottom up: the model and its files (every top-level module but the entry points), tasks/, then
training/ and pipelines/ (side by side: neither imports the other), then the entry points (cli, demo, serve/).

    python tools/check_imports.py [src/roberta_prelayernorm]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str, package: str, known: set) -> set:
    """The package's modules that `name` (at `path`) imports."""
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `from .x import name`: the module x
                target = target.rpartition(".")[0]
            if target.startswith(package) and target != name:
                found.add(target)
    return found


# packages; other modules are 0, the entry points 3 (serve/, the HTTP server over the pipelines, is one)
LAYERS = {"tasks": 1, "training": 2, "pipelines": 2, "serve": 3}
ENTRY_POINTS = ("cli", "demo", "__main__")


def layer(module: str) -> tuple[int, str]:
    """(level, package) of a module of the package."""
    part = module.split(".")[1] if "." in module else ""
    return (3 if part in ENTRY_POINTS else LAYERS.get(part, 0)), part


def upward(graph: dict) -> list:
    """(importer, imported) pairs that run up a layer or across to a side-by-side package."""
    out = []
    for name, targets in graph.items():
        (level, part) = layer(name)
        for target in sorted(targets):
            (target_level, target_part) = layer(target)
            if target_level > level or (level == 2 and target_level == 2 and target_part != part):
                out.append((name, target))
    return out


def circles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent.parent / "src" / "roberta_prelayernorm")
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    package = root.name
    # A package's __init__ re-exporting its modules is not a dependency of those modules on it.
    graph = {name: {t for t in imports_of(path, name, package, set(files)) if not name.startswith(t + ".")}
             for name, path in files.items()}
    found, up = circles(graph), upward(graph)
    for component in found:
        print("import circle: " + ", ".join(component))
    for name, target in up:
        print(f"upward import: {name} imports {target}")
    print(f"{len(files)} modules, {len(found)} import circle(s), {len(up)} upward import(s)")
    return 1 if found or up else 0


if __name__ == "__main__":
    sys.exit(main())
