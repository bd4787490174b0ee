"""The layering of README "Layout": no module imports from a layer above its own, and no two modules
import each other, not even inside a function (read from the source with ast, nothing imported)."""
import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# bottom to top, as README "Layout" lists them
LAYERS = [{"config", "common"}, {"data"}, {"symbols"}, {"rundir"}, {"evaluation"}, {"training"},
          {"train", "evaluate", "predict", "export"}, {"experiments", "scripts", "bench"}]
LAYER = {name: k for k, names in enumerate(LAYERS) for name in names}


def library_modules():
    """{module name: path} of every .py file the layers hold (tests and docs aside)."""
    out = {}
    for top in sorted(LAYER):
        path = os.path.join(REPO, top)
        if os.path.isfile(path + ".py"):
            out[top] = path + ".py"
        for root, _, files in os.walk(path):
            for f in files:
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(root, f), REPO)[:-3].replace(os.sep, ".")
                    out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(root, f)
    return out


def imports_of(module, path, known):
    """The project modules ``module`` imports anywhere in its file (function bodies included)."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            names = [stem] + ["%s.%s" % (stem, a.name) for a in node.names]  # `from pkg import module`
        else:
            continue
        found |= {n for n in names if n in known and n != module}
    return found


def test_no_module_imports_from_a_higher_layer_or_back():
    modules = library_modules()
    assert {"rundir.layout", "rundir.nets", "training.checkpoint", "export", "evaluation.metrics"} <= set(modules)
    graph = {m: imports_of(m, p, modules) for m, p in modules.items()}
    upward = sorted("%s -> %s" % (m, n) for m, ns in graph.items() for n in ns
                    if LAYER[n.split(".")[0]] > LAYER[m.split(".")[0]])
    assert upward == []
    # a package's __init__ may name its own modules; any other pair importing each other is a cycle
    mutual = sorted("%s <-> %s" % (m, n) for m, ns in graph.items() for n in ns
                    if m < n and m in graph.get(n, ()) and not (m == n.rpartition(".")[0] or n == m.rpartition(".")[0]))
    assert mutual == []


def test_the_check_sees_an_upward_import(tmp_path):
    """The parser above finds a function-local, relative import (the kind that hid the old cycles)."""
    f = tmp_path / "checkpoint.py"
    f.write_text("def g():\n    from . import optim_states\n    from rundir.layout import RunError\n")
    got = imports_of("training.checkpoint", str(f), {"training.optim_states", "rundir.layout", "symbols"})
    assert got == {"training.optim_states", "rundir.layout"}
