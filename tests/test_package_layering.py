"""mrcnn's subpackages import each other in one direction only.

Each subpackage has a level; it may import subpackages of lower levels only (so there are no
cycles), and nothing in the library imports ``mrcnn.benchmark``. Imports inside functions count
too. Run this file as a script to print the graph.
"""

import ast
import os
import sys
from collections import defaultdict
from typing import Dict, Set

PACKAGE_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mrcnn")

# level of each subpackage: the lower, the more basic
LEVELS: Dict[str, int] = {
    "structures": 0,
    "config": 0,
    "utils": 1,
    "layers": 2,
    "checkpoint": 2,
    "solver": 2,
    "data": 3,
    "modeling": 3,
    "evaluation": 4,
    "export": 5,
    "model_zoo": 5,
    "engine": 6,
    "benchmark": 7,
}


def _module_name(path: str) -> str:
    relative = os.path.relpath(path, os.path.dirname(PACKAGE_ROOT))[: -len(".py")]
    parts = relative.split(os.sep)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: str):
    module = _module_name(path)
    is_package = path.endswith("__init__.py")
    with open(path, encoding="utf-8") as source:
        tree = ast.parse(source.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.module or ""
                continue
            base = module.split(".")
            base = base if is_package else base[:-1]
            base = base[: len(base) - (node.level - 1)]
            yield ".".join(base + ([node.module] if node.module else []))


def subpackage_imports() -> Dict[str, Set[str]]:
    """{subpackage: subpackages it imports} over every file of mrcnn/."""
    graph: Dict[str, Set[str]] = defaultdict(set)
    for directory, _, files in os.walk(PACKAGE_ROOT):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            parts = _module_name(path).split(".")
            if len(parts) < 2:
                continue  # mrcnn/__init__.py
            for target in _imported_modules(path):
                target_parts = target.split(".")
                if target_parts[0] == "mrcnn" and len(target_parts) > 1 and target_parts[1] != parts[1]:
                    graph[parts[1]].add(target_parts[1])
    return graph


def test_every_subpackage_has_a_level():
    subpackages = {
        entry for entry in os.listdir(PACKAGE_ROOT) if os.path.isfile(os.path.join(PACKAGE_ROOT, entry, "__init__.py"))
    }
    assert subpackages <= set(LEVELS), f"give {sorted(subpackages - set(LEVELS))} a level in LEVELS"


def test_subpackages_import_only_lower_levels():
    upward = [
        f"mrcnn.{source} (level {LEVELS[source]}) imports mrcnn.{target} (level {LEVELS[target]})"
        for source, targets in sorted(subpackage_imports().items())
        for target in sorted(targets)
        if LEVELS.get(target, -1) >= LEVELS.get(source, -1)
    ]
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


if __name__ == "__main__":
    for source, targets in sorted(subpackage_imports().items(), key=lambda item: LEVELS.get(item[0], 99)):
        print(f"{source:12s} -> {', '.join(sorted(targets, key=lambda t: LEVELS.get(t, 99)))}")
    test_subpackages_import_only_lower_levels()
    print("no import goes up a level: no cycles", file=sys.stderr)
