"""The edge proxy: Debian's nginx, configured from deploy/nginx/hocvu.conf.template and run
in the foreground as a child, with its config, pid file and temporary files in
`<run_dir>/nginx/`."""
import math
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from hocvu_tools.devstack import system
from hocvu_tools.devstack.processes import REPO, Process, StartError

TEMPLATE = REPO / "deploy" / "nginx" / "hocvu.conf.template"
SERVICES = ("enrollment", "lessons", "certificates", "notifications", "identity", "reporting")
CORS_VARIABLE = "HOCVU_CORS_ORIGINS"
_RATE = re.compile(r"^([1-9][0-9]{0,6})r/([sm])$")
# scheme, host and optional port, exactly as a browser sends Origin; nothing that could
# break out of the quoted nginx string it is written into
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$")


@dataclass(frozen=True)
class EdgeSettings:
    """Rate limits per client address (nginx rates: "10r/m", "50r/s"; a burst is how many
    requests over the rate are still let through at once) and the CORS origins."""
    sign_in_rate: str = "10r/m"
    sign_in_burst: int = 5
    verify_rate: str = "60r/m"
    verify_burst: int = 20
    api_rate: str = "50r/s"
    api_burst: int = 200
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self):
        self.fields()  # refuse a bad rate or origin when made, not when nginx starts

    @classmethod
    def unthrottled(cls, **changes) -> "EdgeSettings":
        """For load tests, which send everything from one address on purpose."""
        many = {"rate": "1000000r/s", "burst": 1_000_000}
        return cls(**{f"{kind}_{part}": value for kind in ("sign_in", "verify", "api")
                      for part, value in many.items()}, **changes)

    def fields(self) -> dict[str, str]:
        fields = {}
        for kind in ("sign_in", "verify", "api"):
            rate, burst = getattr(self, f"{kind}_rate"), getattr(self, f"{kind}_burst")
            match = _RATE.fullmatch(rate)
            if not match or not isinstance(burst, int) or burst < 0:
                raise ValueError(f"{kind}: {rate!r} burst {burst!r} is not an nginx rate "
                                 "(like 10r/m or 50r/s) with a burst >= 0")
            per_second = int(match[1]) / (60 if match[2] == "m" else 1)
            fields.update({f"{kind}_rate": rate, f"{kind}_burst": str(burst),
                           f"{kind}_retry_after": str(max(1, math.ceil(1 / per_second)))})
        for origin in self.cors_origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin like https://app.example.vn")
        fields["cors_origin_map"] = "\n".join(
            f'        "{origin}" $http_origin;' for origin in self.cors_origins)
        return fields


def cors_origins(environ: Mapping[str, str]) -> tuple[str, ...]:
    """HOCVU_CORS_ORIGINS: comma-separated origins allowed to call the API from a browser."""
    return tuple(origin.strip().rstrip("/") for origin in
                 environ.get(CORS_VARIABLE, "").split(",") if origin.strip())


def render(listen: str, ports: dict[str, int], state_dir: Path, log_dir: Path,
           template: Path = TEMPLATE, edge: EdgeSettings = EdgeSettings()) -> str:
    """The template with every {{field}} filled in; an unknown field is an error."""
    fields = {"listen": listen, "state_dir": str(state_dir), "log_dir": str(log_dir),
              # as root, nginx would run its workers as nobody, who cannot write our folders
              "user_directive": "user root;" if os.geteuid() == 0 else "",
              **{f"{service}_port": str(ports[service]) for service in SERVICES},
              **edge.fields()}

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


def nginx(listen: str, ports: dict[str, int], run_dir: Path, log_dir: Path,
          edge: EdgeSettings = EdgeSettings()) -> Process:
    """An nginx process (not started yet) whose config has been written and checked."""
    binary = ensure_installed()
    state_dir = Path(run_dir).resolve() / "nginx"
    log_dir = Path(log_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    config = state_dir / "nginx.conf"
    config.write_text(render(listen, ports, state_dir, log_dir, edge=edge))
    # -e: nginx opens its default error log before it reads the config; keep even that ours
    base = [binary, "-p", str(state_dir), "-c", str(config), "-e", str(log_dir / "nginx-error.log")]
    check = subprocess.run([*base, "-t", "-q"], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
    if check.returncode:
        raise StartError(f"nginx rejects {config}:\n{check.stderr.strip()}")
    return Process("nginx", [*base, "-g", "daemon off;"], log_dir)
