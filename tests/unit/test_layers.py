"""The layers hold: no service imports another, and the client needs neither the database nor
the queue libraries (nor the development stack) to run. Read from the source, statically."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "libs", ROOT / "services"]
SERVICES = sorted(path.name for path in (ROOT / "services").iterdir() if path.name.startswith("bulkocr_"))


def module_path(module: str) -> Path | None:
    """The file of a first-party module, or None for a third-party one."""
    parts = module.split(".")
    for source in SOURCES:
        base = source.joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def imports_of(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Every module a file imports (at the top, or also inside functions)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if module_path(submodule):  # `from package import module` imports the module too
                    found.add(submodule)
    return found


def reachable(start: str, *, skip_inside_functions_of: frozenset[str] = frozenset()) -> set[str]:
    """Every module importing `start` imports, first-party ones followed, third-party named."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = module_path(module)
        if path is None:
            continue
        parents = module.split(".")
        for index in range(1, len(parents)):  # importing a.b.c runs a/__init__ and a/b/__init__
            todo.append(".".join(parents[:index]))
        todo.extend(imports_of(path, top_level_only=module in skip_inside_functions_of))
    return seen


def test_the_client_needs_no_database_queue_or_development_stack():
    """What `bulkocr submit/push/results` imports (the CLI's development commands import the
    stack inside themselves) holds no pymongo, gridfs, pynsq, tornado or bulkocr_devstack."""
    modules = reachable("bulkocr_client.cli", skip_inside_functions_of=frozenset({"bulkocr_client.cli"}))
    roots = {module.split(".")[0] for module in modules}
    assert "bulkocr_client.client" in modules
    assert not roots & {"pymongo", "gridfs", "nsq", "tornado", "bulkocr_devstack"}, sorted(roots)


def test_no_service_imports_another():
    """A service is built on the shared libraries only, never on another service's code."""
    crossings = []
    for service in SERVICES:
        for path in (ROOT / "services" / service).rglob("*.py"):
            for module in imports_of(path):
                root = module.split(".")[0]
                if root in SERVICES and root != service:
                    crossings.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not crossings, crossings


def test_no_module_is_over_400_lines():
    """A module that grows past 400 lines holds more than one thing: split it where it divides."""
    long = [
        f"{path.relative_to(ROOT)}: {lines}"
        for source in SOURCES
        for path in source.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > 400
    ]
    assert not long, long


def test_unit_tests_stay_pure():
    """The unit tier starts no process, opens no socket and runs no model: what does goes to
    tests/integration, so `make unit` stays fast and exact."""
    impure_modules = {"subprocess", "socket", "multiprocessing", "aiohttp", "bulkocr_devstack"}
    impure_names = ("OcrPool", "SplitProcess", "RapidOcrEngine", 'make_engine("rapidocr"')
    found = []
    for path in sorted((ROOT / "tests" / "unit").glob("test_*.py")):
        if path.name == "test_layers.py":
            continue
        roots = {module.split(".")[0] for module in imports_of(path)}
        found += [f"{path.name}: {name}" for name in sorted(roots & impure_modules)]
        found += [f"{path.name}: {name}" for name in impure_names if name in path.read_text()]
    assert not found, found


WRITING_STORES = {
    "GatewayJobStore": "bulkocr_gateway",
    "IngestJobStore": "bulkocr_ingest",
    "AggregatorJobStore": "bulkocr_aggregator",
}


def test_a_service_writes_jobs_only_through_its_own_store():
    """Jobs have one writer per kind of record: the gateway creates them, ingest splits their
    documents, the aggregator keeps their progress; every other service only reads."""
    strays = []
    for service in SERVICES:
        for path in (ROOT / "services" / service).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bulkocr.mongo"):
                    for alias in node.names:
                        owner = WRITING_STORES.get(alias.name)
                        if owner is not None and owner != service:
                            strays.append(f"{path.relative_to(ROOT)} imports {alias.name}")
    assert not strays, strays
