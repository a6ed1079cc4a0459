"""No process-wide hacks in the dashboard's process: nothing in `dashboard/` or `pipeline/` (which the
dashboard imports) points a file descriptor elsewhere (`os.dup2`) or edits `sys.modules` by hand.

A Streamlit server runs every session's script in its own thread of one process: silencing fd 2
hides every other session's errors meanwhile, and a module put in `sys.modules` for a moment is
what another thread's `import` finds. A grep-level check (with `ast`), so it names the line.
"""

from __future__ import annotations

import ast

from tests.support.import_graph import ROOT, project_modules


def _is_sys_modules(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "modules" and isinstance(node.value, ast.Name)
            and node.value.id == "sys")


def process_hacks(source: str, name: str) -> list[str]:
    """`name:line what` for each fd redirect or hand edit of `sys.modules` in one module's source."""
    found = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "dup2":
                found.append((node.lineno, "os.dup2 (points a file descriptor elsewhere)"))
            elif node.func.attr in ("pop", "setdefault", "update", "clear") \
                    and _is_sys_modules(node.func.value):
                found.append((node.lineno, f"sys.modules.{node.func.attr}"))
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            if any(isinstance(t, ast.Subscript) and _is_sys_modules(t.value) for t in targets):
                found.append((node.lineno, "sys.modules[...] assigned or deleted"))
    return [f"{name}:{line} {what}" for line, what in sorted(found)]


def test_the_dashboard_process_never_redirects_fds_or_edits_sys_modules() -> None:
    found = [hack for path in project_modules().values()
             for hack in process_hacks(path.read_text(), str(path.relative_to(ROOT)))]
    assert found == []


def test_the_check_finds_each_kind() -> None:
    source = ("import os, sys\n"
              "os.dup2(3, 2)\n"
              "sys.modules['tensorflow'] = object()\n"
              "del sys.modules['tensorflow']\n"
              "sys.modules.pop('x', None)\n"
              "sys.modules.get('fine')\n")
    found = process_hacks(source, "hacks.py")
    assert [line.split(" ", 1)[0] for line in found] == [f"hacks.py:{n}" for n in (2, 3, 4, 5)]
