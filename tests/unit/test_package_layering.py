"""The runtime kit (`hocvu`) and the services import none of the tools (`hocvu_tools`):
imports point one way, from the tools to what they drive."""
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
