"""The project's import graph, read from the source with `ast`, and the rules the layout keeps.

`python -m tests.support.import_graph` prints every rule with its verdict (and the offending
imports), exit status 1 if any rule is broken; `tests/unit/test_architecture.py` runs the same
checks in `make test`. Every `import` counts: module level and inside functions (a function-local
import is still a dependency; it only hides a cycle from the interpreter, not from a reader).

The rules (see README "Design"):
- no import cycle among the project's modules;
- `pipeline/` never imports `dashboard` or `streamlit` (the UI sits on top, never underneath);
- `pipeline/serving/` imports nothing from `pipeline/` but the shared leaves (`model_dir`,
  `settings`, `tf_env`, `lifeline`, `tf_protos`, `state`, `formats.tflite` with its own imports
  for LiteRT, and `formats.tfrecord` for request logs): the server is a separate program;
- the leaves import nothing from the project (but their own package), so anything may use them;
- the serving core (`pipeline/serving/*.py` itself, not its `__main__` entry point) never imports a
  front end (`pipeline.serving.rest`, `pipeline.serving.grpc`), so front ends plug in beside it;
- a front end imports from the serving core only its public request API (`dataplane`, `errors`:
  `REQUEST_API`), so REST and gRPC stay codecs on one request path and cannot grow a second one;
- on-disk state is written only through `pipeline.state` (docs/state.md): no hand-written
  temp-file-and-rename, `flock` or signal to a bare pid anywhere else (a line-level check of the
  source, with the few legitimate uses allowed by name and reason in `STATE_ALLOWED`).
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "dashboard")
SERVING = "pipeline.serving"
LEAVES = ("pipeline.model_dir", "pipeline.settings", "pipeline.tf_env", "pipeline.lifeline",
          # TensorFlow's and TF Serving's protos without importing TensorFlow (the gRPC tensor reader,
          # shared by the server and the dashboard's client, needs DataType)
          "pipeline.tf_protos",
          # on-disk state (atomic writes, locks, process records): every part writes files through it
          "pipeline.state")
"""Modules (or packages) every part of the project may import; they import nothing from it."""
SERVING_MAY_USE = frozenset({*LEAVES,
                             # LiteRT runs .tflite versions: the project's one runner, and its imports
                             "pipeline.formats.tflite", "pipeline.formats.errors",
                             # request logs are TFRecord files: the project's one TFRecord writer (it
                             # imports only pipeline.state)
                             "pipeline.formats.tfrecord"})
STATE = "pipeline.state"
STATE_PATTERNS = {
    "rename": re.compile(r"\bos\.(replace|rename)\(|\.rename\((?!\s*(columns|index|mapper)=)"),  # not pandas
    "flock": re.compile(r"\bfcntl\b"),
    "tmp file": re.compile(r"[\"']\.tmp\b|\.tmp[\"']"),
    "signal": re.compile(r"\bos\.(kill|killpg)\("),
}
"""Hand-written on-disk state: a temp-file-then-rename write, a lock, a temporary named by hand,
or a signal sent to a bare pid (a recycled pid gets it); `pipeline.state` does each safely."""
STATE_ALLOWED = {
    ("pipeline/store/versions.py", "os.rename(tmp, target)"):
        "an export claims the next version number with a rename that must fail, not replace, when the "
        "number exists (a racing exporter took it), so it moves on to the next number",
    ("pipeline/store/versions.py", "os.rename(path, doomed)"):
        "a deleted version is renamed out of the servers' sight (a non-numeric name) before removal",
    ("pipeline/store/versions.py", '_TMP_PREFIX = ".tmp-"'):
        "exports are staged in hidden `.tmp-<pid>-<uuid>` folders that become a version by that rename",
}
"""`(file, text of the line)` pairs allowed to do by hand what `STATE_PATTERNS` forbids, with the
reason: each names one line, so a new hand-written write in the same file is still caught."""
FRONT_ENDS = ("pipeline.serving.rest", "pipeline.serving.grpc")
REQUEST_API = ("pipeline.serving.dataplane", "pipeline.serving.errors")
"""What a front end may import from the serving core: the data plane (admission, deadlines,
hand-off, batching, metrics, lookups) and the outcomes (status codes, error types)."""
UI_LIBRARIES = ("dashboard", "streamlit")


@dataclass(frozen=True)
class Import:
    """One import statement: who imports what, where (the name as written, resolved if relative)."""

    source: str
    target: str
    line: int


def module_name(path: Path, root: Path = ROOT) -> str:
    """`pipeline/client/rest.py` -> `pipeline.client.rest`; a package's `__init__.py` -> the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found[module_name(path, root)] = path
    return found


def _resolve_relative(source: str, is_package: bool, level: int, module: str | None) -> str:
    base = source.split(".") if is_package else source.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, module] if module else base)


def imports_of(name: str, path: Path) -> list[Import]:
    """Every import in one module, at any depth, with names as absolute dotted paths. For
    `from package import name`, the target is `package.name` (the submodule or the attribute
    of `package`; :func:`project_edges` decides which)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _resolve_relative(name, path.name == "__init__.py", node.level, node.module)
            found += [Import(name, f"{base}.{alias.name}" if alias.name != "*" else base, node.lineno)
                      for alias in node.names]
    return found


def resolve(target: str, modules: Iterable[str]) -> str | None:
    """The project module an imported name lives in (the longest module prefix), or None for
    anything outside the project."""
    known = set(modules)
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return None


def all_imports(root: Path = ROOT) -> list[Import]:
    """Every import statement of every project module."""
    return [imp for name, path in project_modules(root).items() for imp in imports_of(name, path)]


def project_edges(imports: list[Import], modules: Iterable[str]) -> dict[str, set[str]]:
    """The project-internal graph: module -> the project modules it imports (self-edges from a
    package naming its own attribute dropped)."""
    known = list(modules)
    graph: dict[str, set[str]] = {name: set() for name in known}
    for imp in imports:
        target = resolve(imp.target, known)
        if target is not None and target != imp.source:
            graph[imp.source].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), each as a cycle
    path `a -> b -> ... -> a` through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                components.append(_cycle_path(sorted(component), graph))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _cycle_path(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One concrete cycle inside a strongly connected component, starting at its first module."""
    members = set(component)
    start = component[0]
    path, seen = [start], {start}
    node = start
    while True:
        nxt = sorted(n for n in graph[node] if n in members)
        back = [n for n in nxt if n == start]
        if back and len(path) > 1:
            return [*path, start]
        fresh = [n for n in nxt if n not in seen]
        if not fresh:
            return [*path, start]
        node = fresh[0]
        path.append(node)
        seen.add(node)


def _in(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def ui_imports_in_pipeline(imports: list[Import]) -> list[Import]:
    """Imports of the dashboard or Streamlit from anywhere under `pipeline/`."""
    return [i for i in imports if _in(i.source, "pipeline") and any(_in(i.target, u) for u in UI_LIBRARIES)]


def serving_reaching_out(imports: list[Import], modules: Iterable[str]) -> list[Import]:
    """Imports from `pipeline/serving/` of project modules outside it, other than the shared leaves."""
    known = list(modules)
    bad = []
    for imp in imports:
        target = resolve(imp.target, known)
        if (_in(imp.source, SERVING) and target is not None and _in(target, "pipeline")
                and not _in(target, SERVING) and target not in SERVING_MAY_USE):
            bad.append(imp)
    return bad


def core_importing_front_ends(imports: list[Import]) -> list[Import]:
    """Imports of a front end (`rest`, `grpc`) by a module directly in `pipeline/serving/`
    (its `__main__`, which wires the front ends to the core, excepted)."""
    def is_core(name: str) -> bool:
        return _in(name, SERVING) and name.count(".") <= 2 and name != f"{SERVING}.__main__" and not any(
            _in(name, f) for f in FRONT_ENDS)

    return [i for i in imports if is_core(i.source) and any(_in(i.target, f) for f in FRONT_ENDS)]


def front_ends_reaching_in(imports: list[Import], modules: Iterable[str]) -> list[Import]:
    """Imports of a serving-core module other than `REQUEST_API` by a front end (its own package,
    and the other front end's, are not the core)."""
    known = list(modules)
    bad = []
    for imp in imports:
        target = resolve(imp.target, known)
        if (any(_in(imp.source, f) for f in FRONT_ENDS) and target is not None and _in(target, SERVING)
                and target != SERVING and not any(_in(target, f) for f in FRONT_ENDS)
                and target not in REQUEST_API):
            bad.append(imp)
    return bad


def leaves_reaching_out(imports: list[Import], modules: Iterable[str]) -> list[Import]:
    """Imports of project modules by a leaf, other than the leaves (its own package included)."""
    known = list(modules)
    bad = []
    for imp in imports:
        target = resolve(imp.target, known)
        if (any(_in(imp.source, leaf) for leaf in LEAVES) and target is not None
                and not any(_in(target, leaf) for leaf in LEAVES)):
            bad.append(imp)
    return bad


def hand_written_state(root: Path = ROOT) -> list[str]:
    """`path:line: [pattern] text` for every line outside `pipeline/state/` that writes state by hand
    (`STATE_PATTERNS`), unless `STATE_ALLOWED` names that file and pattern."""
    found = []
    for name, path in project_modules(root).items():
        if _in(name, STATE):
            continue
        rel = path.relative_to(root).as_posix()
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#", 1)[0]
            for kind, pattern in STATE_PATTERNS.items():
                if pattern.search(code) and not any(f == rel and text in line for f, text in STATE_ALLOWED):
                    found.append(f"{rel}:{number}: [{kind}] {line.strip()}")
    return found


def report(root: Path = ROOT) -> tuple[bool, str]:
    """Every rule's verdict as text, and whether all hold."""
    modules = project_modules(root)
    imports = all_imports(root)
    graph = project_edges(imports, modules)
    found = cycles(graph)
    checks = [
        ("no import cycles", [" -> ".join(c) for c in found]),
        ("pipeline/ never imports dashboard or streamlit",
         [f"{i.source}:{i.line} imports {i.target}" for i in ui_imports_in_pipeline(imports)]),
        ("pipeline/serving/ imports only the shared leaves (model_dir, settings, tf_env, lifeline, "
         "tf_protos, state, formats.tflite, formats.tfrecord) from outside it",
         [f"{i.source}:{i.line} imports {i.target}" for i in serving_reaching_out(imports, modules)]),
        ("the leaves (" + ", ".join(leaf.split(".", 1)[1] for leaf in LEAVES) + ") import nothing from "
         "the project but each other",
         [f"{i.source}:{i.line} imports {i.target}" for i in leaves_reaching_out(imports, modules)]),
        ("the serving core imports no front end (rest/, grpc/)",
         [f"{i.source}:{i.line} imports {i.target}" for i in core_importing_front_ends(imports)]),
        ("the front ends (rest/, grpc/) import only the core's request API (" + ", ".join(
            api.rsplit(".", 1)[1] for api in REQUEST_API) + ")",
         [f"{i.source}:{i.line} imports {i.target}" for i in front_ends_reaching_in(imports, modules)]),
        ("on-disk state is written only through pipeline.state (atomic writes, locks, process records)",
         hand_written_state(root)),
    ]
    edges = sum(len(targets) for targets in graph.values())
    lines = [f"{len(modules)} modules, {edges} project-internal imports"]
    for title, problems in checks:
        lines.append(f"{'ok  ' if not problems else 'FAIL'} {title}")
        lines += [f"       {p}" for p in problems]
    return all(not problems for _, problems in checks), "\n".join(lines)


def main() -> int:
    ok, text = report()
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
