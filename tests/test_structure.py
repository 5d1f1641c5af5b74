"""The package's shape: no import circle among modules at import time, and small modules."""
from __future__ import annotations

import ast
from pathlib import Path

import polydl

ROOT = Path(polydl.__file__).parent
#: about 400 lines a module; a module past this must be split by concept
MAX_LINES = 450
#: the one documented late import: ``Tensor``'s operators dispatch to the ops, which build Tensors
LATE_IMPORTS = {("polydl.tensor", "polydl.functional")}


def _module_name(path: Path) -> str:
    parts = ["polydl", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the polydl modules it imports at import time (module level, not inside functions
    or ``TYPE_CHECKING`` blocks)."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            for sub in ([node] if not isinstance(node, (ast.If, ast.Try)) else ast.walk(node)):
                if isinstance(sub, ast.Import):
                    deps |= {a.name for a in sub.names if a.name.startswith("polydl")}
                elif isinstance(sub, ast.ImportFrom):
                    target = (_resolve(name, path.name == "__init__.py", sub.level, sub.module) if sub.level
                              else sub.module or "")
                    if not target.startswith("polydl"):
                        continue
                    for alias in sub.names:
                        full = f"{target}.{alias.name}"
                        deps.add(full if full in modules else target)
        graph[name] = {d for d in deps if d in modules and d != name and (name, d) not in LATE_IMPORTS}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _without_packages(graph):
    """A package's ``__init__`` re-exporting its modules, which import siblings through the
    package, is no circle: edges from a module to a package that contains it are dropped."""
    return {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}


def test_no_import_circle_at_import_time():
    cycles = _cycles(_without_packages(_import_graph()))
    assert cycles == [], f"modules that import each other at import time: {cycles}"


def test_the_circle_check_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_modules_are_small():
    big = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py")
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert big == {}, f"modules over {MAX_LINES} lines (split them by concept): {big}"


def test_test_modules_have_unique_names():
    """pytest imports test modules by their base name (the tests have no packages): two of one
    name in different folders stop the whole run at collection."""
    import collections

    tests = Path(__file__).parent
    names = collections.Counter(p.name for p in [*tests.rglob("test_*.py"), *tests.parent.glob("plugins/*/tests/test_*.py")])
    assert [n for n, c in names.items() if c > 1] == []
