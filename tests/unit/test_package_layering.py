"""Imports point one way: the tools (`hocvu_tools`) drive the services and the runtime kit,
the services stand on the kit (`hocvu`), and nothing imports back up."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ("hocvu", "services", "sms_simulator")


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def runtime_sources() -> list[Path]:
    return sorted(p for package in RUNTIME for p in (ROOT / package).rglob("*.py"))


def test_runtime_code_imports_no_tool():
    sources = runtime_sources()
    assert len(sources) > 50  # the walk found the code it is meant to check
    offenders = {str(path.relative_to(ROOT)): sorted(tools) for path in sources
                 if (tools := {m for m in imported_modules(path)
                               if m == "hocvu_tools" or m.startswith("hocvu_tools.")})}
    assert offenders == {}


def test_the_runtime_kit_imports_no_service():
    """`hocvu` is what every service stands on: an import of a service from it would be an
    arrow back up (and, as the OpenAPI generator once made, a circle)."""
    sources = sorted((ROOT / "hocvu").rglob("*.py"))
    assert len(sources) > 20
    offenders = {str(path.relative_to(ROOT)): sorted(found) for path in sources
                 if (found := {m for m in imported_modules(path)
                               if m == "services" or m.startswith("services.")})}
    assert offenders == {}


def test_services_import_no_other_service():
    """Services talk through events only: one importing another's code would share state
    the architecture keeps apart."""
    offenders = {}
    for path in sorted((ROOT / "services").rglob("*.py")):
        own = path.relative_to(ROOT / "services").parts[0]
        others = {m for m in imported_modules(path) if m.startswith("services.")
                  and m.split(".")[1] != own}
        if others:
            offenders[str(path.relative_to(ROOT))] = sorted(others)
    assert offenders == {}
