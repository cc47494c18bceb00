"""The locks pin every package with the hashes of its files and are installed with hash
checking; setuptools is past its published advisories; README lists the licence of every
runtime dependency as the installed packages declare it. (The audit against PyPI's advisory
data needs the network: `make audit`, docs/operations.md.)"""
import re
from pathlib import Path

from packaging.version import Version

from hocvu_tools.devstack import licences

ROOT = Path(__file__).resolve().parents[2]
LOCKS = {name: (ROOT / "requirements" / f"{name}.lock").read_text() for name in ("runtime", "dev")}


def requirements(lock_text: str) -> list[str]:
    """Each requirement of a lock, its continuation lines joined; comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", lock_text)
    return [line.split("#", 1)[0].strip() for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_every_locked_package_is_pinned_with_hashes():
    for name, text in LOCKS.items():
        found = requirements(text)
        assert len(found) > 20, name
        for requirement in found:
            # a package may carry the extras another asks for (dev.lock: see `make lock`)
            assert re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[a-z0-9,_-]+\])?==\S+ ",
                            requirement), requirement
            assert re.search(r"--hash=sha256:[0-9a-f]{64}", requirement), requirement


def test_dev_lock_holds_the_runtime_packages_at_the_runtime_versions():
    def pins(text):
        return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in
                re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[a-z0-9,_-]+\])?==(\S+)",
                           text, re.M)}
    runtime, dev = pins(LOCKS["runtime"]), pins(LOCKS["dev"])
    assert {name: dev.get(name) for name in runtime} == runtime


def test_make_installs_with_hash_checking_and_locks_with_hashes():
    makefile = (ROOT / "Makefile").read_text()
    install = [line for line in makefile.splitlines()
               if "pip install" in line and "requirements/" in line]
    assert install and all("--require-hashes" in line for line in install), install
    assert "--generate-hashes" in makefile
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    assert "--require-hashes" in dockerfile


def test_setuptools_is_past_its_advisories_and_keeps_pkg_resources():
    version = Version(re.search(r"^setuptools==(\S+)", LOCKS["runtime"], re.M).group(1))
    # 78.1.1 fixes CVE-2025-47273 (and with it 65.5.1's and 70.0's fixes); nameko's command
    # imports pkg_resources, which 81 removed and whose import 80.9 made print a warning
    assert Version("78.1.1") <= version < Version("80.9")


def test_readme_lists_the_licence_of_every_runtime_dependency():
    readme = (ROOT / "README.md").read_text()
    assert licences.table() in readme, "run .venv/bin/python -m hocvu_tools.devstack.licences"
    assert len(licences.pinned()) == len(requirements(LOCKS["runtime"]))
