"""The floor plan: vaelab's modules form layers that import only downward, with no cycle.

Every import under src/vaelab is read, those inside functions included (the job import-linter does),
so a deferred import cannot hide a cycle. Data flows one way:

    ground -> maths -> data -> models -> evaluation -> training -> run folders -> faces

A new module must be placed in a layer here; an import from a higher layer fails the test.
"""
import ast
import fnmatch
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "vaelab"

LAYERS = [   # lowest first; a module may import its own layer and those below it
    ("ground", ["pictures", "errors", "_version", "progress", "distributed", "storage", "machine", "schedules", "graphs"]),
    ("maths", ["densities", "nets"]),
    ("data", ["data", "data.*"]),
    ("models", ["models", "models.*"]),
    ("evaluation", ["evaluate", "codes", "disentanglement"]),
    ("training", ["config", "configure", "batches", "judge", "pace", "trainer", "tracking"]),
    ("run folders", ["runs", "runs.*", "plots"]),
    ("faces", ["vaelab", "__main__", "api", "cli", "cli_args", "recipes", "recipes.*", "explorer", "explorer.*"]),
]
MAX_DEFERRED = 5   # imports of vaelab modules inside functions, each with its reason in a comment beside it


def modules() -> dict[str, Path]:
    """Module name relative to the package ("vaelab" for the package itself) -> file."""
    found = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts) or "vaelab"] = path
    return found


def imports(name: str, path: Path, known: dict) -> list[tuple[str, int, bool]]:
    """(imported vaelab module, line, inside a function) for every import in one module."""
    tree = ast.parse(path.read_text())
    package = [] if name == "vaelab" else name.split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside |= {id(n) for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1] + ([node.module] if node.module else [])
            elif (node.module or "").split(".")[0] == "vaelab":
                base = node.module.split(".")[1:]
            else:
                continue
            targets = [".".join(base + [a.name]) for a in node.names]
            targets = [t if t in known else ".".join(base) or "vaelab" for t in targets]
        elif isinstance(node, ast.Import):
            targets = [".".join(a.name.split(".")[1:]) or "vaelab" for a in node.names
                       if a.name.split(".")[0] == "vaelab"]
        else:
            continue
        for target in targets:
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if target != name:
                found.append((target, node.lineno, id(node) in inside))
    return found


def layer_of(name: str) -> int:
    for i, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            return i
    raise AssertionError(f"module {name} is in no layer: place it in tests/test_layers.py LAYERS")


@pytest.fixture(scope="module")
def graph():
    known = modules()
    return known, {name: imports(name, path, known) for name, path in known.items()}


def test_every_module_has_a_layer_and_imports_only_downward(graph):
    known, edges = graph
    upward = [f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} ({LAYERS[layer_of(target)][0]}) "
              f"at line {line}"
              for name, found in edges.items() for target, line, _ in found if layer_of(target) > layer_of(name)]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycle_counting_imports_inside_functions(graph):
    known, edges = graph
    succ = {name: {t for t, _, _ in found} for name, found in edges.items()}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):   # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in succ.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in known:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_deferred_imports_are_few_and_explained(graph):
    """The package face imports every module anyway, so a deferred import saves no start-up time: it
    would only hide a cycle. Today there are none."""
    known, edges = graph
    deferred = []
    for name, found in edges.items():
        lines = known[name].read_text().splitlines()
        for target, line, inside in found:
            if inside:
                deferred.append((name, target, line, "#" in lines[line - 1]))
    assert len(deferred) <= MAX_DEFERRED, deferred
    assert all(reason for *_, reason in deferred), f"deferred imports without a reason beside them: {deferred}"


def test_the_checker_sees_an_upward_and_a_deferred_import(tmp_path):
    """The reader itself: an import inside a function, relative or absolute, is found with its line."""
    path = tmp_path / "m.py"
    path.write_text("from .errors import VaelabError\n\n\ndef f():\n    from .api import train  # why\n"
                    "    import vaelab.cli\n")
    found = imports("densities", path, {"errors": 0, "api": 0, "cli": 0, "densities": 0})
    assert found == [("errors", 1, False), ("api", 5, True), ("cli", 6, True)]
    assert layer_of("api") > layer_of("densities")


def test_modules_and_functions_stay_readable():
    """No module over 400 lines and no function over 60: each file has one job, each function fits a screen."""
    too_long = []
    for name, path in modules().items():
        source = path.read_text()
        if len(source.splitlines()) > 400:
            too_long.append(f"module {name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                too_long.append(f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not too_long, too_long


def test_every_source_file_is_tracked_by_git():
    """A module the package imports but git ignores passes here and fails on a fresh clone (a `runs/` rule
    meant for run folders once hid vaelab/runs/)."""
    import subprocess

    repo = SRC.parents[1]
    if not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "-C", str(repo), "check-ignore", *map(str, SRC.rglob("*.py"))],
                             capture_output=True, text=True).stdout.split()
    assert not ignored, f"source files git ignores: {ignored}"
