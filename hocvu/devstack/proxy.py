"""The edge proxy: Debian's nginx, configured from deploy/nginx/hocvu.conf.template."""
import os
import shutil
import subprocess
from pathlib import Path

from hocvu.devstack.processes import REPO, Process

TEMPLATE = REPO / "deploy" / "nginx" / "hocvu.conf.template"
SERVICES = ("enrollment", "lessons", "certificates", "notifications")


def render(listen: str, ports: dict[str, int], run_dir: Path, log_dir: Path) -> str:
    fields = {"listen": listen, "run_dir": str(run_dir), "log_dir": str(log_dir),
              # nginx's workers would run as nobody, who cannot write our temp folders
              "user_directive": "user root;" if os.geteuid() == 0 else "",
              **{f"{service}_port": str(ports[service]) for service in SERVICES}}
    text = TEMPLATE.read_text()
    for name, value in fields.items():
        text = text.replace("{{" + name + "}}", value)
    if "{{" in text:
        raise ValueError(f"unfilled field in {TEMPLATE}: {text[text.index('{{'):][:40]}")
    return text


def ensure_installed() -> str:
    nginx = shutil.which("nginx") or (Path("/usr/sbin/nginx").exists() and "/usr/sbin/nginx")
    if nginx:
        return nginx
    print("installing nginx-light from Debian's packages ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    subprocess.run([*prefix, "apt-get", "update", "-qq"], check=True, env=env,
                   stdin=subprocess.DEVNULL)
    subprocess.run([*prefix, "apt-get", "install", "-y", "-qq", "nginx-light"], check=True,
                   env=env, stdin=subprocess.DEVNULL)
    return shutil.which("nginx") or "/usr/sbin/nginx"


def nginx(listen: str, ports: dict[str, int], run_dir: Path, log_dir: Path) -> Process:
    """An nginx in the foreground with its config, pid and temp files under `run_dir`."""
    binary = ensure_installed()
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / "nginx.conf"
    config.write_text(render(listen, ports, run_dir, log_dir))
    return Process("nginx", [binary, "-p", str(run_dir), "-c", str(config),
                             "-e", str(log_dir / "nginx-error.log"), "-g", "daemon off;"],
                   log_dir)
