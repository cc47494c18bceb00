"""Debian packages and commands the dev stack needs from the machine."""
import os
import shutil
import subprocess

from hocvu_tools.devstack.processes import StartError

# a non-root user's PATH often lacks the sbin folders where Debian puts servers
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def find(command: str) -> str | None:
    return shutil.which(command, path=SEARCH_PATH)


def as_root(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return command
    if shutil.which("sudo"):
        return ["sudo", "-n", *command]  # -n: fail rather than wait for a password nobody types
    raise StartError(f"need root or sudo to run: {' '.join(command)}")


def apt_install(package: str) -> None:
    """Install a Debian package without asking anything (there may be no terminal)."""
    print(f"installing {package} from Debian's packages ...", flush=True)
    for args in (["update", "-qq"], ["install", "-y", "-qq", package]):
        # through env: sudo would drop DEBIAN_FRONTEND from the environment
        subprocess.run(as_root(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", *args]),
                       check=True, stdin=subprocess.DEVNULL)
