"""The package's layers import downward only, and no module imports itself in a circle.

Every ``import atomloc...`` / ``from atomloc... import`` statement counts, those inside
functions too (a lazy import hides a circle from Python, not from this test).
"""

import ast
from pathlib import Path

import atomloc

PACKAGE = Path(atomloc.__file__).parent
# Rank of each layer: a module may import its own layer and the layers of lower rank.
# simulate, locate and ptycho share a rank and do not import each other.
LAYERS = {"core": 0, "io": 1, "simulate": 2, "locate": 2, "ptycho": 2, "series": 3, "analysis": 4, "learn": 5,
          "plotting": 6, "cli": 7, "testing": 7}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "core"  # the top-level __init__ re-exports core only


def import_edges(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the atomloc modules it imports (anywhere in the file)."""
    modules = {module_name(p) for p in package.rglob("*.py")}
    edges = {}
    for path in sorted(package.rglob("*.py")):
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.split(".")[0] == "atomloc"}
            elif (isinstance(node, ast.ImportFrom) and node.level == 0
                  and (node.module or "").split(".")[0] == "atomloc"):
                for a in node.names:  # `from atomloc.locate import classical` imports the submodule
                    sub = f"{node.module}.{a.name}"
                    targets.add(sub if sub in modules else node.module)
        edges[module_name(path)] = targets
    return edges


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    """Imports from a layer into a higher layer or into a sibling of the same rank."""
    bad = []
    for src, targets in edges.items():
        for dst in targets:
            a, b = layer(src), layer(dst)
            if a != b and LAYERS[b] >= LAYERS[a]:
                bad.append(f"{src} ({a}) imports {dst} ({b})")
    return sorted(bad)


def import_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Circles in the module import graph (a package's own submodules do not count as importing it)."""
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    return cycles


def test_every_module_belongs_to_a_layer():
    assert {layer(m) for m in import_edges()} <= set(LAYERS)


def test_layers_import_downward_only():
    assert upward_imports(import_edges()) == []


def test_no_import_circles():
    assert import_cycles(import_edges()) == []


def test_the_checks_catch_a_circle_and_an_upward_import():
    edges = import_edges()
    # the two circles issue 15 removed, put back
    edges["atomloc.simulate.library"].add("atomloc.simulate.series")
    edges["atomloc.simulate.series"].add("atomloc.simulate.library")
    edges["atomloc.locate.classical"].add("atomloc.locate.learned")
    edges["atomloc.locate.learned"].add("atomloc.locate.classical")
    cycles = import_cycles(edges)
    # (a circle is reported from whichever of its modules the search reached first)
    found = [set(c) for c in cycles]
    assert {"atomloc.simulate.library", "atomloc.simulate.series"} in found
    assert {"atomloc.locate.classical", "atomloc.locate.learned"} in found
    # the scorer reaching into the simulator, and a sibling import
    edges["atomloc.core.optics"].add("atomloc.simulate.library")
    edges["atomloc.locate.spacing"].add("atomloc.simulate.render")
    assert upward_imports(edges) == [
        "atomloc.core.optics (core) imports atomloc.simulate.library (simulate)",
        "atomloc.locate.spacing (locate) imports atomloc.simulate.render (simulate)"]


def test_the_workflow_imports_names_that_exist():
    """Rule files are not Python modules, so nothing else checks their (often lazy) imports."""
    import importlib
    import re

    workflow = PACKAGE.parent / "workflow"
    found = 0
    for path in [*workflow.rglob("*.smk"), *workflow.rglob("*.py"), PACKAGE.parent / "Snakefile"]:
        text = path.read_text()
        pattern = r"^\s*from (atomloc[\w.]*) import (?:\(([^)]*)\)|([\w, ]+)$)"
        for module, wrapped, names in re.findall(pattern, text, re.M):
            names = wrapped or names
            mod = importlib.import_module(module)
            for name in (n.strip() for n in names.replace("\n", " ").split(",")):
                if name:
                    found += 1
                    assert hasattr(mod, name), f"{path.name}: {module} has no {name}"
    assert found > 30
