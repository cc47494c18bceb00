"""Every service reads the same way (docs/architecture.md, "One service folder"): the same
modules under the same names, rules without I/O, one place that prepares the store, and
entrypoints that only parse, delegate and answer."""
import ast
from pathlib import Path

import pytest

from tests.unit.test_package_layering import imported_modules

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir()
                  if (p / "service.py").exists())
SHAPE = ("service.py", "schemas.py", "domain.py", "repository.py", "settings.py")
# what talks to the store, the broker, the network or the container
IO = ("pymongo", "nameko", "kombu", "amqp", "requests", "urllib3", "eventlet", "socket",
      "hocvu.store", "hocvu.messaging", "hocvu.outbox", "hocvu.http", "hocvu.groupwrite",
      "hocvu.leases", "hocvu.background", "hocvu.health", "hocvu.operations")


def defined_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_the_six_services_are_all_checked():
    assert SERVICES == ["certificates", "enrollment", "identity", "lessons", "notifications",
                        "reporting"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_same_modules(service):
    missing = [name for name in SHAPE if not (ROOT / "services" / service / name).exists()]
    assert missing == []


@pytest.mark.parametrize("service", SERVICES)
def test_a_services_rules_do_no_io(service):
    found = imported_modules(ROOT / "services" / service / "domain.py")
    assert sorted(m for m in found if any(m == io or m.startswith(io + ".") for io in IO)) == []


@pytest.mark.parametrize("service", SERVICES)
def test_one_prepare_per_service_in_its_repository(service):
    """The indexes and seed data of a service are found in one place; the modules of its
    bigger jobs (imports, reminders) keep theirs under another name, called from there."""
    package = ROOT / "services" / service
    preparing = sorted(str(p.relative_to(package)) for p in package.rglob("*.py")
                       if "prepare" in defined_functions(p))
    assert preparing == ["repository.py"]


@pytest.mark.parametrize("service", SERVICES)
def test_service_py_holds_entrypoints_not_dependency_providers_or_indexes(service):
    source = (ROOT / "services" / service / "service.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    providers = [node.name for node in tree.body if isinstance(node, ast.ClassDef)
                 and any(getattr(base, "id", getattr(base, "attr", "")) in
                         ("DependencyProvider", "ServiceStore") for base in node.bases)]
    assert providers == [] and "create_index" not in source
