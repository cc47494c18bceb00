"""`python -m hocvu_tools.devstack run` (make run), `python -m hocvu_tools.devstack stop` (make stop) and
`python -m hocvu_tools.devstack ensure-broker` (make test). See README, "The two commands"."""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil

from hocvu_tools.devstack import config, proxy
from hocvu_tools.devstack.processes import VAR, Process, StartError, port_holder, wait_gone
from hocvu_tools.devstack.rabbitmq import DEFAULT_URI, ensure_rabbitmq, reachable, service_users
from hocvu_tools.devstack.stack import BOOTSTRAP_ADMIN, PROVINCE, SERVICES, Stack, StackSettings
from hocvu_tools.devstack.store import ServiceStores
from hocvu_tools.devstack.supervisor import Supervisor

STATE_FILE = VAR / "run" / "devstack.json"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run(environ=os.environ) -> int:
    started = time.monotonic()
    ports = config.ports(environ)
    amqp_uri = config.external_uri(environ, "AMQP_URI")
    mongo_uri = config.external_uri(environ, "MONGO_URI")
    mongo_uris = config.service_store_uris(environ, SERVICES)
    store_ports = config.store_ports(ports, SERVICES)
    log_dir, run_dir = VAR / "log", VAR / "run"
    stop_leftovers(STATE_FILE)
    check_ports_free({**{part: port for part, port in ports.items() if part != "store"},
                      **({} if mongo_uri else {f"store-{service}": port for service, port
                                               in store_ports.items()
                                               if service not in mongo_uris})})
    platform_secrets = config.platform_secrets(environ, VAR / "secrets.env")
    try:
        edge = proxy.EdgeSettings(cors_origins=proxy.cors_origins(environ))
    except ValueError as error:
        raise SystemExit(f"make run: {proxy.CORS_VARIABLE}: {error}") from None
    log_dir.mkdir(parents=True, exist_ok=True)
    record_state(STATE_FILE, [])

    stores: ServiceStores | None = None
    stack: Stack | None = None
    stop_on_signals()
    try:
        amqp_uris = {}
        if not amqp_uri:  # our own broker: each service logs in as itself (deploy/README.md)
            amqp_uri = ensure_rabbitmq()
            amqp_uris = own_broker_users()
        own = [service for service in SERVICES if not mongo_uri and service not in mongo_uris]
        if own:
            print(f"store: starting a SecantusDB for each of {', '.join(own)} on 127.0.0.1:"
                  f"{min(store_ports[s] for s in own)}-{max(store_ports[s] for s in own)}, "
                  f"data in {VAR / 'stores'}/<service>", flush=True)
            began = time.monotonic()
            stores = ServiceStores(own, VAR / "stores", log_dir,
                                   {service: store_ports[service] for service in own}).start()
            mongo_uris = {**stores.uris, **mongo_uris}
            print(f"store: ready after {time.monotonic() - began:.1f} s", flush=True)
            record_state(STATE_FILE, list(stores.processes.values()))
        print("starting the SMS gateway simulator, the six services and nginx ...", flush=True)
        stack = Stack(StackSettings(amqp_uri=amqp_uri, mongo_uri=mongo_uri,
                                    mongo_uris=mongo_uris, secrets=platform_secrets, ports=ports,
                                    log_dir=log_dir, run_dir=run_dir,
                                    edge=edge, amqp_uris=amqp_uris,
                                    store_profile=environ.get("STORE_PROFILE") or (
                                        "embedded" if stores else "mongodb")))
        stack.start()
        store_processes = list(stores.processes.values()) if stores else []
        record_state(STATE_FILE, [*store_processes, *stack.processes.values()])
        print_summary(stack, stores, amqp_uri, log_dir, time.monotonic() - started)
        parts = [*store_processes, *stack.processes.values()]
        Supervisor(parts, on_restart=lambda: record_state(STATE_FILE, parts)).run()
        return 0
    except KeyboardInterrupt:
        return 0
    except StartError as error:
        print(f"\nmake run failed: {error}\nThe logs of every part are in {log_dir}/.",
              file=sys.stderr)
        return 1
    finally:
        ignore_signals()  # a second Ctrl-C must not cut the stopping short
        print("stopping what was started here ...", flush=True)
        if stack:
            stack.stop()
        if stores:  # last: the services may write while they finish their work
            stores.stop()
        STATE_FILE.unlink(missing_ok=True)
        print("stopped.", flush=True)


def own_broker_users() -> dict[str, str]:
    """A RabbitMQ user per service with the least permissions it needs (new passwords each
    start); guest for all when rabbitmqctl cannot be run (not root, no password-less sudo)."""
    try:
        return service_users("/")
    except (OSError, subprocess.SubprocessError) as error:
        print(f"RabbitMQ: could not create a user per service ({error}); every service "
              "logs in as guest", file=sys.stderr, flush=True)
        return {}


def stop_on_signals() -> None:
    """Ctrl-C, SIGTERM and a closed terminal (SIGHUP) stop the launcher wherever it is, also
    while it waits for a part to start. Set explicitly: a launcher started in the background
    inherits SIGINT as ignored."""
    def interrupt(signum, frame):
        ignore_signals()
        raise KeyboardInterrupt

    for signum in STOP_SIGNALS:
        signal.signal(signum, interrupt)


def ignore_signals() -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def check_ports_free(ports: dict[str, int]) -> None:
    taken = [f"  {port} ({part}, {config.PORT_VARIABLES[part]}): taken by {holder}"
             for part, port in ports.items() if (holder := port_holder(port))]
    if taken:
        raise SystemExit("make run: ports in use; stop what holds them, or choose other ports "
                         "with the variables named:\n" + "\n".join(taken))


def record_state(state_file: Path, processes: list[Process | None]) -> None:
    """Note this launcher and its children, so that a later run can tell whether it is still
    running, or stop what it left behind if it was killed."""
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state = {"launcher": _identity(os.getpid()),
             "children": [{"name": p.name, **_identity(p.pid)} for p in processes if p]}
    state_file.write_text(json.dumps(state, indent=1))


def stop_leftovers(state_file: Path) -> None:
    if not state_file.exists():
        return
    state = json.loads(state_file.read_text())
    launcher = _running(state["launcher"])
    if launcher:
        raise SystemExit(f"make run: hocvu is already running (launcher pid {launcher.pid}); "
                         f"stop it with Ctrl-C in its terminal, or `kill {launcher.pid}`")
    leftovers = {child["name"]: process for child in state["children"]
                 if (process := _running(child))}
    if leftovers:
        print(f"stopping what a killed `make run` left running: {', '.join(leftovers)}",
              flush=True)
        for process in leftovers.values():
            process.terminate()
        for process in wait_gone(leftovers.values(), 10):
            process.kill()
    state_file.unlink()


def stop(state_file: Path = STATE_FILE, timeout: float = 60) -> int:
    """Stop a running `make run` from anywhere, as Ctrl-C in its terminal does: SIGTERM to
    its launcher, which stops what it started; then wait until every process it recorded is
    gone. For scripts: a signal sent to `make` itself is not passed on in every case (make
    waits for its recipe on SIGINT; a shell starts a background job ignoring SIGINT)."""
    if not state_file.exists():
        print("make stop: hocvu is not running (no var/run/devstack.json)")
        return 0
    state = json.loads(state_file.read_text())
    launcher = _running(state["launcher"])
    everything = [p for p in [launcher, *(_running(c) for c in state["children"])] if p]
    if launcher:
        print(f"stopping hocvu (launcher pid {launcher.pid}) ...", flush=True)
        launcher.terminate()
    else:  # killed: stop what it left
        for process in everything:
            process.terminate()
    left = wait_gone(everything, timeout)
    for process in left:
        process.kill()
    if not launcher:
        state_file.unlink(missing_ok=True)
    print("stopped." if not left else f"killed {len(left)} that would not stop", flush=True)
    return 0 if not left else 1


def _identity(pid: int) -> dict:
    # with the start time: a PID alone may have been reused by now
    return {"pid": pid, "started": psutil.Process(pid).create_time()}


def _running(identity: dict) -> psutil.Process | None:
    try:
        process = psutil.Process(identity["pid"])
        return process if process.create_time() == identity["started"] else None
    except psutil.NoSuchProcess:
        return None


def print_summary(stack: Stack, stores: ServiceStores | None, amqp_uri: str,
                  log_dir: Path, seconds: float) -> None:
    rows = [(service, stack.url(service), f"127.0.0.1:{stack.ports[service]}",
             log_dir / f"{service}.log") for service in SERVICES]
    rows.append(("SMS gateway", f"{stack.sms_gateway}/v1/messages", "simulator",
                 log_dir / "sms_simulator.log"))
    rows.append(("edge (nginx)", stack.base_url, "", log_dir / "nginx-access.log"))
    for service in SERVICES:
        started_here = stores is not None and service in stores.processes
        uri = stack.settings.mongo_uris.get(service, stack.settings.mongo_uri)
        rows.append((f"store {service}", mask_uri(uri), "SecantusDB" if started_here
                     else "external", log_dir / f"store-{service}.log" if started_here else "-"))
    rows.append(("RabbitMQ", mask_uri(amqp_uri), "left running", "-"))
    print(f"\nhocvu is running at {stack.base_url} (started in {seconds:.1f} s)\n")
    for name, url, note, log in rows:
        print(f"  {name:<14} {url:<46} {note:<16} log: {_relative(log)}")
    print(f"\nMetrics (Prometheus text; operations only, the edge does not route them): "
          f"{stack.url_direct('enrollment', 'metrics')}, and the same on each service's port. "
          f"Logs: one JSON object a line, in {_relative(log_dir)}/.")
    print(f"\nSign in as the province admin of {PROVINCE}: user {BOOTSTRAP_ADMIN}, password in "
          f"{_relative(VAR / 'secrets.env')} (BOOTSTRAP_ADMIN_PASSWORD); README, the journey.")
    print(f"The progress page: {stack.base_url}/reporting/ (figures after "
          "`.venv/bin/python -m hocvu_tools.devstack.demo`; README).")
    print(f"\nCtrl-C stops everything started here (RabbitMQ keeps running); so do `make stop` "
          f"and `kill {os.getpid()}` from elsewhere.", flush=True)


def mask_uri(uri: str) -> str:
    """The URI without its password, for printing."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _relative(path) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def ensure_broker(environ=os.environ) -> int:
    given = config.external_uri(environ, "AMQP_URI")
    if given:  # someone else's broker: check it, never start one
        if reachable(given):
            return 0
        print(f"no RabbitMQ accepts a login at AMQP_URI={mask_uri(given)}", file=sys.stderr)
        return 1
    try:
        ensure_rabbitmq(DEFAULT_URI)
    except StartError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m hocvu_tools.devstack")
    parser.add_argument("command", choices=["run", "stop", "ensure-broker"],
                        help="run: the whole platform (make run); stop: stop a running one "
                             "(make stop); ensure-broker: make sure RabbitMQ answers on "
                             "127.0.0.1:5672 (make test)")
    command = parser.parse_args().command
    try:
        sys.exit({"run": run, "stop": stop, "ensure-broker": ensure_broker}[command]())
    except config.ConfigError as error:
        sys.exit(f"python -m hocvu_tools.devstack {command}: {error}")


if __name__ == "__main__":
    main()
