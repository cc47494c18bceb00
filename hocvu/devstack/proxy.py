"""The edge proxy: Debian's nginx, configured from deploy/nginx/hocvu.conf.template and run
in the foreground as a child, with its config, pid file and temporary files in
`<run_dir>/nginx/`."""
import os
import re
import subprocess
from pathlib import Path

from hocvu.devstack import system
from hocvu.devstack.processes import REPO, Process, StartError

TEMPLATE = REPO / "deploy" / "nginx" / "hocvu.conf.template"
SERVICES = ("enrollment", "lessons", "certificates", "notifications")


def render(listen: str, ports: dict[str, int], state_dir: Path, log_dir: Path,
           template: Path = TEMPLATE) -> str:
    """The template with every {{field}} filled in; an unknown field is an error."""
    fields = {"listen": listen, "state_dir": str(state_dir), "log_dir": str(log_dir),
              # as root, nginx would run its workers as nobody, who cannot write our folders
              "user_directive": "user root;" if os.geteuid() == 0 else "",
              **{f"{service}_port": str(ports[service]) for service in SERVICES}}

    def fill(match: re.Match) -> str:
        if match[1] not in fields:
            raise ValueError(f"{template} has a field render() does not know: {match[0]}")
        return fields[match[1]]

    return re.sub(r"\{\{(\w+)\}\}", fill, template.read_text())


def ensure_installed() -> str:
    """nginx's path, after installing nginx-light from Debian's packages if it is missing."""
    found = system.find("nginx")
    if found:
        return found
    system.apt_install("nginx-light")
    found = system.find("nginx")
    if not found:
        raise StartError("nginx-light was installed but no nginx command was found")
    return found


def nginx(listen: str, ports: dict[str, int], run_dir: Path, log_dir: Path) -> Process:
    """An nginx process (not started yet) whose config has been written and checked."""
    binary = ensure_installed()
    state_dir = Path(run_dir).resolve() / "nginx"
    log_dir = Path(log_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    config = state_dir / "nginx.conf"
    config.write_text(render(listen, ports, state_dir, log_dir))
    # -e: nginx opens its default error log before it reads the config; keep even that ours
    base = [binary, "-p", str(state_dir), "-c", str(config), "-e", str(log_dir / "nginx-error.log")]
    check = subprocess.run([*base, "-t", "-q"], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
    if check.returncode:
        raise StartError(f"nginx rejects {config}:\n{check.stderr.strip()}")
    return Process("nginx", [*base, "-g", "daemon off;"], log_dir)
