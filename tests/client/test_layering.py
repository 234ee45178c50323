"""`hitl_streams.client` depends on the domain modules only (never the server, Redis or the network) and
does nothing at import time, so it can be imported inside a workflow sandbox."""

from __future__ import annotations

import ast
from pathlib import Path

import hitl_streams.client

PACKAGE = Path(hitl_streams.client.__file__).parent
DOMAIN = {"actions", "durations", "errors", "namespaces", "reminders", "results", "schedule"}
THIRD_PARTY = {"msgspec"}
FORBIDDEN_STDLIB = {"threading", "socket", "ssl", "http", "urllib", "subprocess", "concurrent"}


def imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
        elif isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
    return found


def test_client_imports_only_the_domain() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        for level, module in imports(path):
            top = module.split(".")[0]
            if level == 1:
                continue  # within the client package
            if level == 2:
                assert top in DOMAIN, f"{path.name} imports ..{module}"
            elif level == 0:
                assert top not in ("hitl_streams", "redis", "httpx", "anyio"), f"{path.name} imports {module}"
                assert top not in FORBIDDEN_STDLIB, f"{path.name} imports {module}"
                assert top in THIRD_PARTY or top in __import__("sys").stdlib_module_names, module
            else:
                raise AssertionError(f"{path.name}: import {'.' * level}{module} leaves the package")


def test_no_environment_reads_at_import_time() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module-level statements only
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            assert "environ" not in ast.unparse(node), f"{path.name}: {ast.unparse(node)}"
