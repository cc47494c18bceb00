"""RabbitMQ for the dev stack and the tests.

`ensure_rabbitmq()` gives `make run` and `make test` the shared broker on 127.0.0.1:5672:
reused when a guest login works, else installed from Debian's packages if missing and
started with `rabbitmq-server -detached`. It is a system service and is left running.

`PrivateRabbitMQ` is a node of a test's own, which the test may stop and restart.
`Vhost` is a throwaway virtual host on a broker (created with rabbitmqctl, so as root or
with password-less sudo), for tests and benchmarks that must not see anyone else's queues.
"""
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pika

from hocvu.devstack import system
from hocvu.devstack.processes import Process, StartError, free_port, port_holder

DEFAULT_URI = "amqp://guest:guest@127.0.0.1:5672/"
# Debian's /usr/sbin/rabbitmq-server is a wrapper that, run as root, switches to the rabbitmq
# user and keeps the environment; the script it runs is this one, which runs as its caller.
NODE_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


def reachable(uri: str = DEFAULT_URI, timeout: float = 2) -> bool:
    """Can we log in? (A TCP connect alone could be something else on the port.)"""
    parameters = pika.URLParameters(uri)
    parameters.socket_timeout = timeout
    parameters.blocked_connection_timeout = timeout
    parameters.stack_timeout = timeout
    parameters.connection_attempts = 1
    try:
        pika.BlockingConnection(parameters).close()
        return True
    except Exception:
        return False


def install_rabbitmq() -> None:
    try:
        system.apt_install("rabbitmq-server")
    except StartError as error:
        raise StartError(f"{error}; or start RabbitMQ yourself and set AMQP_URI") from None


def ensure_rabbitmq(uri: str = DEFAULT_URI, timeout: float = 90) -> str:
    """Make sure a broker answers at `uri` (a local one) and return `uri`."""
    if reachable(uri):
        print(f"RabbitMQ: reusing the broker at {_where(uri)}", flush=True)
        return uri
    parameters = pika.URLParameters(uri)
    if parameters.host not in ("127.0.0.1", "localhost") or parameters.port != 5672:
        # rabbitmq-server -detached can only bring up this machine's default node
        raise StartError(f"no RabbitMQ answers at {_where(uri)}; start it, or point AMQP_URI "
                         "at one that runs")
    started = time.monotonic()
    server = system.find("rabbitmq-server")
    if not server:
        install_rabbitmq()
        server = system.find("rabbitmq-server") or "/usr/sbin/rabbitmq-server"
        # the package's init script may have started it already
        if _wait_reachable(uri, 10):
            return _ready(uri, started)
    print("RabbitMQ: starting it with rabbitmq-server -detached (it keeps running after us)",
          flush=True)
    # fails harmlessly if the node is already running but still booting: we wait either way
    attempt = subprocess.run(system.as_root([server, "-detached"]), stdin=subprocess.DEVNULL,
                             capture_output=True, text=True)
    if _wait_reachable(uri, timeout):
        return _ready(uri, started)
    raise StartError(
        f"RabbitMQ did not accept a guest login at {_where(uri)} within {timeout:.0f} s.\n"
        f"`rabbitmq-server -detached` exited {attempt.returncode}: "
        f"{(attempt.stdout + attempt.stderr).strip() or '(no output)'}\n"
        "Its logs are in /var/log/rabbitmq/.")


def _wait_reachable(uri: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reachable(uri):
            return True
        time.sleep(1)
    return False


def _ready(uri: str, started: float) -> str:
    print(f"RabbitMQ: ready at {_where(uri)} after {time.monotonic() - started:.1f} s", flush=True)
    return uri


def _where(uri: str) -> str:
    parameters = pika.URLParameters(uri)
    return f"{parameters.host}:{parameters.port}"


class PrivateRabbitMQ:
    """A RabbitMQ node of a test's own: its own name, ports and folders under `base` (a new
    temporary folder if not given, deleted by `stop()`), so stopping or restarting it
    disturbs nobody. Messages in durable queues survive `restart()`.

    It runs Debian's node script directly, as the current user (the /usr/sbin wrapper would
    switch root to the rabbitmq user, who cannot write a root-owned temporary folder), with no
    plugins and none of /etc/rabbitmq's settings. It registers with the machine's epmd
    (started on first use if none runs, and left running like any epmd).
    """

    def __init__(self, base: Path | None = None, port: int | None = None,
                 dist_port: int | None = None):
        self._own_base = base is None
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="hocvu-rabbitmq-"))
        self.port = port or free_port()
        self.dist_port = dist_port or free_port()
        self.nodename = f"hocvu-{self.port}@localhost"
        self.amqp_uri = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.process: Process | None = None

    def environment(self) -> dict[str, str]:
        base = self.base
        return {
            "HOME": str(base),  # where Erlang keeps the node's cookie
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),  # + .conf; absent: defaults
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_LOGS": "-",  # to standard output, which is the node's log file
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            "ERL_CRASH_DUMP": str(base / "erl_crash.dump"),
        }

    def start(self, timeout: float = 90) -> "PrivateRabbitMQ":
        for port in (self.port, self.dist_port):
            holder = port_holder(port)
            if holder:
                raise StartError(f"cannot start RabbitMQ {self.nodename}: port {port} is taken "
                                 f"by {holder}")
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq-env.conf").touch()
        self.process = Process(f"rabbitmq-{self.port}", [NODE_SCRIPT], self.base,
                               self.environment()).start()
        try:
            self.process.wait_until(lambda: reachable(self.amqp_uri), timeout,
                                    what="accepting a guest login")
        except BaseException:
            self.process.stop(grace=30)
            raise
        return self

    def stop(self) -> None:
        """Stop the node (its data stays until the folder goes: at once if it is ours)."""
        self._stop_node()
        if self._own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def restart(self, timeout: float = 90) -> None:
        self._stop_node()
        self.start(timeout)

    def _stop_node(self) -> None:
        if self.process:
            self.process.stop(grace=30)  # the script turns SIGTERM into an orderly shutdown

    def __enter__(self) -> "PrivateRabbitMQ":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Vhost:
    def __init__(self, prefix: str, host: str = "127.0.0.1", port: int = 5672):
        self.name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.amqp_uri = f"amqp://guest:guest@{host}:{port}/{quote(self.name, safe='')}"

    def __enter__(self) -> "Vhost":
        _rabbitmqctl("add_vhost", self.name)
        _rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        return self

    def __exit__(self, *exc) -> None:
        _rabbitmqctl("delete_vhost", self.name)


def _rabbitmqctl(*args: str) -> None:
    command = system.as_root([system.find("rabbitmqctl") or "rabbitmqctl", *args])
    subprocess.run(command, check=True, capture_output=True, timeout=60)
