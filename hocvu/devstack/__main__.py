"""`python -m hocvu.devstack run` (make run) and `python -m hocvu.devstack ensure-broker`."""
import argparse
import os
import secrets
import signal
import sys
import threading

from hocvu.devstack import rabbitmq
from hocvu.devstack.processes import VAR
from hocvu.devstack.stack import SERVICES, Stack, StackSettings
from hocvu.devstack.store import start_secantus, store_uri

DEFAULT_PORTS = {"edge": 8000, "enrollment": 8001, "lessons": 8002, "certificates": 8003,
                 "notifications": 8004, "sms_simulator": 8025, "store": 27017}
SECRETS = VAR / "secrets.env"


def configured_ports() -> dict[str, int]:
    """HOCVU_HTTP_PORT for the edge, HOCVU_<PART>_PORT for the others."""
    names = {"edge": "HOCVU_HTTP_PORT"}
    return {part: int(os.environ.get(names.get(part, f"HOCVU_{part.upper()}_PORT"), default))
            for part, default in DEFAULT_PORTS.items()}


def national_id_hash_key() -> str:
    """The environment's key, else the one generated on the first run (it must never change,
    or returning learners are no longer recognised)."""
    if os.environ.get("NATIONAL_ID_HASH_KEY"):
        return os.environ["NATIONAL_ID_HASH_KEY"]
    if not SECRETS.exists():
        SECRETS.parent.mkdir(parents=True, exist_ok=True)
        SECRETS.write_text(f"NATIONAL_ID_HASH_KEY={secrets.token_hex(32)}\n")
        SECRETS.chmod(0o600)
    for line in SECRETS.read_text().splitlines():
        if line.startswith("NATIONAL_ID_HASH_KEY="):
            return line.split("=", 1)[1]
    raise SystemExit(f"{SECRETS} has no NATIONAL_ID_HASH_KEY")


def run() -> None:
    ports = configured_ports()
    log_dir = VAR / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    amqp_uri = os.environ.get("AMQP_URI") or rabbitmq.ensure()
    store = None
    mongo_uri = os.environ.get("MONGO_URI")
    if not mongo_uri:
        print(f"store: SecantusDB on 127.0.0.1:{ports['store']}, data in {VAR / 'store'}",
              flush=True)
        store = start_secantus(ports["store"], VAR / "store", log_dir)
        mongo_uri = store_uri(ports["store"])
    stack = Stack(StackSettings(amqp_uri=amqp_uri, mongo_uri=mongo_uri,
                                national_id_hash_key=national_id_hash_key(), ports=ports,
                                log_dir=log_dir, run_dir=VAR / "run"))
    stopping = threading.Event()
    # explicit handlers: a launcher started in the background inherits SIGINT as ignored
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        stack.start()
        print(f"\nhocvu is running at {stack.base_url}")
        for service in SERVICES:
            print(f"  {stack.url(service, 'health'):<50} log: {log_dir / (service + '.log')}")
        print(f"  SMS gateway simulator: {stack.sms_gateway}/v1/messages")
        print("Ctrl-C stops everything started here (RabbitMQ keeps running).", flush=True)
        while not stopping.wait(1):
            dead = [name for name, p in stack.processes.items() if not p.alive()]
            if dead:
                print(f"stopped unexpectedly: {', '.join(dead)}; see {log_dir}", file=sys.stderr)
                break
    finally:
        print("stopping ...", flush=True)
        stack.stop()
        if store:
            store.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m hocvu.devstack")
    parser.add_argument("command", choices=["run", "ensure-broker"])
    command = parser.parse_args().command
    if command == "run":
        run()
    else:
        rabbitmq.ensure(os.environ.get("AMQP_URI") or rabbitmq.DEFAULT_URI)


if __name__ == "__main__":
    main()
