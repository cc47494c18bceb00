"""RabbitMQ for the dev stack: reuse a running broker, else install and start Debian's."""
import os
import shutil
import subprocess
import time

import pika

DEFAULT_URI = "amqp://guest:guest@127.0.0.1:5672/"


def reachable(uri: str = DEFAULT_URI) -> bool:
    """Can we log in? (A TCP connect alone could be something else on the port.)"""
    parameters = pika.URLParameters(uri)
    parameters.socket_timeout = 2
    parameters.blocked_connection_timeout = 2
    parameters.connection_attempts = 1
    try:
        pika.BlockingConnection(parameters).close()
        return True
    except Exception:
        return False


def _as_root(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return command
    if shutil.which("sudo"):
        return ["sudo", "-n", *command]
    raise RuntimeError(f"need root (or sudo) to run: {' '.join(command)}")


def install() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("installing rabbitmq-server from Debian's packages ...", flush=True)
    subprocess.run(_as_root(["apt-get", "update", "-qq"]), check=True, env=env,
                   stdin=subprocess.DEVNULL)
    subprocess.run(_as_root(["apt-get", "install", "-y", "-qq", "rabbitmq-server"]), check=True,
                   env=env, stdin=subprocess.DEVNULL)


def ensure(uri: str = DEFAULT_URI, timeout: float = 90) -> str:
    """Make sure a broker answers at `uri`; return it. A broker started here keeps running."""
    if reachable(uri):
        print(f"RabbitMQ: reusing the broker at {pika.URLParameters(uri).host}", flush=True)
        return uri
    if not shutil.which("rabbitmq-server"):
        install()
    print("RabbitMQ: starting rabbitmq-server -detached", flush=True)
    subprocess.run(_as_root(["rabbitmq-server", "-detached"]), check=True,
                   stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reachable(uri):
            return uri
        time.sleep(1)
    raise RuntimeError(f"RabbitMQ did not answer within {timeout}s; see /var/log/rabbitmq/")
