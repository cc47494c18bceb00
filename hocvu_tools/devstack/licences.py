"""The licence of every runtime dependency, from the installed packages' own metadata:
`python -m hocvu_tools.devstack.licences` prints the table README.md shows (under "Licences of the
runtime dependencies"); tests/unit/test_supply_chain.py fails when the two differ.

What a package declares, in this order: its SPDX `License-Expression`, its `License` field
when that is a short name (some put the whole licence text there), its trove classifiers.
"""
import re
from importlib import metadata
from pathlib import Path

from hocvu_tools.devstack.processes import REPO

RUNTIME_LOCK = REPO / "requirements" / "runtime.lock"
_PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.M)


def pinned(lock: Path = RUNTIME_LOCK) -> list[tuple[str, str]]:
    """(name, version) of every package the lock pins, in the lock's order."""
    return _PINNED.findall(lock.read_text())


def licence(name: str) -> str:
    meta = metadata.metadata(name)
    if meta.get("License-Expression"):
        return meta["License-Expression"]
    declared = (meta.get("License") or "").strip()
    if declared and declared != "UNKNOWN" and "\n" not in declared and len(declared) <= 60:
        return declared
    classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or []
                   if c.startswith("License :: ") and c != "License :: OSI Approved"]
    return " / ".join(classifiers) or "not stated"


def table(lock: Path = RUNTIME_LOCK) -> str:
    rows = ["| package | version | licence |", "| --- | --- | --- |"]
    for name, version in sorted(pinned(lock), key=lambda row: row[0].lower()):
        rows.append(f"| {name} | {version} | {licence(name)} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(table(), end="")
