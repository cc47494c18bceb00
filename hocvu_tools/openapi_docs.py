"""The platform's OpenAPI documents as committed in docs/openapi/ (hocvu.openapi generates
each from its service's routes): each service's document for clients, the operators' one of
its operations routes (docs/openapi/operations/), and the clients' documents of the last
release they are compared with (docs/openapi/released/, hocvu_tools.openapi_compat).

    python -m hocvu_tools.openapi_docs write docs/openapi     after changing a route or schema
    python -m hocvu_tools.openapi_docs release docs/openapi   when a release is published
"""
import json
import shutil
import sys
from pathlib import Path

from hocvu.openapi import document, operators_document
from services.certificates.service import CertificatesService
from services.enrollment.service import EnrollmentService
from services.identity.service import IdentityService
from services.lessons.service import LessonsService
from services.notifications.service import NotificationsService
from services.reporting.service import ReportingService

RELEASED = "released"  # under the documents' directory
OPERATIONS = "operations"  # the operators' documents, under the documents' directory


def service_classes() -> list:
    """Every service of the platform."""
    return [IdentityService, EnrollmentService, LessonsService, CertificatesService,
            NotificationsService, ReportingService]


def _json(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def render(service_class) -> str:
    """A document as committed in docs/openapi/: stable key order, one trailing newline."""
    return _json(document(service_class))


def render_operations(service_class) -> str:
    """The operators' document, as committed in docs/openapi/operations/."""
    return _json(operators_document(service_class))


def write(directory: Path) -> list[Path]:
    (directory / OPERATIONS).mkdir(parents=True, exist_ok=True)
    written = []
    for service_class in service_classes():
        path = directory / f"{service_class.name}.json"
        path.write_text(render(service_class), encoding="utf-8")
        operations = directory / OPERATIONS / f"{service_class.name}.json"
        operations.write_text(render_operations(service_class), encoding="utf-8")
        written += [path, operations]
    return written


def release(directory: Path) -> list[Path]:
    """Keep the committed documents as the last release's: later changes are compared with
    them, so a break stays visible until the release that announces it."""
    released = directory / RELEASED
    released.mkdir(parents=True, exist_ok=True)
    copied = []
    for service_class in service_classes():
        source = directory / f"{service_class.name}.json"
        shutil.copyfile(source, released / source.name)
        copied.append(released / source.name)
    return copied


def main(argv: list[str]) -> int:
    commands = {"write": write, "release": release}
    if len(argv) != 2 or argv[0] not in commands:
        print("usage: python -m hocvu_tools.openapi_docs write|release DIRECTORY "
              "(docs/openapi in this repository)", file=sys.stderr)
        return 2
    for path in commands[argv[0]](Path(argv[1])):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
