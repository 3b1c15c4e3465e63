"""The shape of the package: imports run one way, and modules stay small enough to read."""

import ast
from pathlib import Path

import jtex

PACKAGE = Path(jtex.__file__).resolve().parent
MAX_LINES = 420


def _imports(path: Path) -> set[str]:
    """jtex modules a file imports, at any depth (function-level imports count too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "jtex":
            if node.module == "jtex":
                out |= {a.name for a in node.names if (PACKAGE / f"{a.name}.py").is_file()}
            else:
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("jtex.")}
    return out


def _graph() -> dict[str, set[str]]:
    return {p.stem: _imports(p) - {p.stem} for p in PACKAGE.glob("*.py") if p.stem != "__init__"}


def test_import_graph_has_no_circle():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join(path[path.index(nxt) :] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_detector_finds_a_circle(tmp_path, monkeypatch):
    # The check above must be able to fail: a two-module circle is reported.
    monkeypatch.setattr(__import__(__name__), "_graph", lambda: {"a": {"b"}, "b": {"a"}})
    try:
        test_import_graph_has_no_circle()
    except AssertionError as e:
        assert "a -> b -> a" in str(e)
    else:
        raise AssertionError("a circle went unnoticed")


def test_low_level_modules_do_not_import_the_engine():
    graph = _graph()
    engine = {"synth", "rundir", "cli", "objective", "animation"}
    for low in ("vgg", "pyramid", "stats", "image", "files", "colour", "errors", "choices", "metrics"):
        assert not graph.get(low, set()) & engine, (low, graph[low] & engine)


def test_modules_stay_small():
    long = {p.name: n for p in PACKAGE.glob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules by concept: {long}"
