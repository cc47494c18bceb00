"""RabbitMQ for the dev stack and the tests.

`ensure_rabbitmq()` gives `make run` and `make test` the shared broker on 127.0.0.1:5672:
reused when a guest login works, else installed from Debian's packages if missing and
started with `rabbitmq-server -detached`. It is a system service and is left running.

`PrivateRabbitMQ` is a node of a test's own, which the test may stop, kill and restart.
`RabbitMQCluster` is three (or more) such nodes joined into one cluster, for the tests that
stop a node under quorum queues; services reach it through `failover_uri`.
`Vhost` is a throwaway virtual host on a broker (created with rabbitmqctl, so as root or
with password-less sudo), for tests and benchmarks that must not see anyone else's queues.

`service_users(vhost)` gives each service a RabbitMQ user of its own, allowed only what
that service does (`service_permissions`): the same rule as in production
(deploy/README.md, "Least privilege").
"""
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pika
import psutil

from hocvu import contracts, topology
from hocvu_tools.devstack import system
from hocvu_tools.devstack.processes import Process, StartError, free_port, port_holder, wait_gone

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
                 dist_port: int | None = None, cookie: str | None = None,
                 config: str = ""):
        self._own_base = base is None
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="hocvu-rabbitmq-"))
        self.port = port or free_port()
        self.dist_port = dist_port or free_port()
        self.nodename = f"hocvu-{self.port}@localhost"
        self.amqp_uri = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.process: Process | None = None
        # nodes of one cluster share the Erlang cookie; alone, Erlang makes one up
        self.cookie = cookie
        self.config = config  # rabbitmq.conf's lines

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
        if self.config:
            (self.base / "rabbitmq.conf").write_text(self.config)
        if self.cookie:
            cookie_file = self.base / ".erlang.cookie"
            if not cookie_file.exists():
                cookie_file.write_text(self.cookie)
                cookie_file.chmod(0o400)  # Erlang refuses a cookie others may read
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

    def kill(self) -> None:
        """SIGKILL the node's whole process group, as a crash would: no orderly shutdown, and
        what the node had not written to disk is gone (it confirms a persistent message only
        once it is). Start it again on the same data with `start()`."""
        if self.process and self.process.alive():
            family = psutil.Process(self.process.pid).children(recursive=True)
            self.process.kill()
            wait_gone(family, 30)  # else the restarted node could find its ports still held

    def _stop_node(self) -> None:
        if self.process:
            self.process.stop(grace=30)  # the script turns SIGTERM into an orderly shutdown

    def running(self) -> bool:
        return bool(self.process and self.process.alive())

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """`rabbitmqctl -n <this node> ARGS` (as this user, with the node's cookie); its
        standard output."""
        return _node_tool("rabbitmqctl", self, *args, timeout=timeout)

    def __enter__(self) -> "PrivateRabbitMQ":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _node_tool(tool: str, node: PrivateRabbitMQ, *args: str, timeout: float = 60) -> str:
    # Debian's /usr/sbin/rabbitmqctl switches root to the rabbitmq user, who has neither
    # the node's cookie nor its folder: the script it runs is called directly, with HOME
    # where the node keeps its cookie
    script = NODE_SCRIPT.parent / tool
    answer = subprocess.run([str(script), "-q", "-n", node.nodename, *args],
                            env={**os.environ, "HOME": str(node.base)},
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=timeout)
    if answer.returncode:
        raise StartError(f"{tool} -n {node.nodename} {' '.join(args)} exited "
                         f"{answer.returncode}: {(answer.stdout + answer.stderr).strip()}")
    return answer.stdout


class RabbitMQCluster:
    """`size` private nodes (PrivateRabbitMQ: each its own name, AMQP and distribution
    ports, data and log folders under `base`) joined into one cluster, for tests that stop
    or kill a node while quorum queues carry the load. The first node starts alone; the
    others find it on their first boot through classic peer discovery (rabbitmq.conf) and
    join it. Each node is stopped, killed and started again by its process id, on its own
    data. `failover_uri` names every node, as kombu and nameko take alternates
    (`amqp://a;amqp://b;...`): a client whose node goes away connects to the next."""

    def __init__(self, base: Path | None = None, size: int = 3):
        self._own_base = base is None
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="hocvu-cluster-"))
        cookie = secrets.token_hex(20)
        ports = [free_port() for _ in range(size)]
        names = [f"hocvu-{port}@localhost" for port in ports]
        discovery = ("cluster_formation.peer_discovery_backend = classic_config\n"
                     + "".join(f"cluster_formation.classic_config.nodes.{i} = {name}\n"
                               for i, name in enumerate(names, 1)))
        self.nodes = [PrivateRabbitMQ(self.base / f"node{i}", port, free_port(), cookie,
                                      discovery)
                      for i, port in enumerate(ports, 1)]

    @property
    def failover_uri(self) -> str:
        return ";".join(node.amqp_uri for node in self.nodes)

    def running_nodes(self) -> list[PrivateRabbitMQ]:
        return [node for node in self.nodes if node.running()]

    def node_named(self, nodename: str) -> PrivateRabbitMQ:
        return next(node for node in self.nodes if node.nodename == nodename)

    def start(self, timeout: float = 120) -> "RabbitMQCluster":
        try:
            self.nodes[0].start(timeout)
            others = self.nodes[1:]
            errors: list[BaseException] = []

            def start(node):
                try:
                    node.start(timeout)
                except BaseException as exc:  # noqa: BLE001 - raised below
                    errors.append(exc)

            threads = [threading.Thread(target=start, args=(node,)) for node in others]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if errors:
                raise errors[0]
            self.wait_clustered(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def members(self, via: PrivateRabbitMQ | None = None) -> tuple[set[str], set[str]]:
        """(the cluster's nodes, those running), as a running node sees them."""
        via = via or self.running_nodes()[0]
        status = json.loads(via.ctl("cluster_status", "--formatter", "json"))
        return set(status["disk_nodes"]) | set(status.get("ram_nodes", [])), \
            set(status["running_nodes"])

    def wait_clustered(self, timeout: float = 60) -> None:
        """Until every running node sees every node of the cluster, and the running ones
        running."""
        names = {node.nodename for node in self.nodes}
        deadline = time.monotonic() + timeout
        while True:
            running = {node.nodename for node in self.running_nodes()}
            seen = [self.members(node) for node in self.running_nodes()]
            if all(members == names and up == running for members, up in seen):
                return
            if time.monotonic() > deadline:
                raise StartError(f"the RabbitMQ nodes did not form one cluster within "
                                 f"{timeout:.0f} s: {seen}")
            time.sleep(1)

    def quorum_leaders(self, vhost: str = "/") -> dict[str, str]:
        """{quorum queue: the node holding its leader}, as a running node reports it."""
        listing = self.running_nodes()[0].ctl("list_queues", "-p", vhost, "name", "type",
                                              "leader", "--formatter", "json")
        return {row["name"]: row["leader"] for row in json.loads(listing)
                if row["type"] == "quorum"}

    def stop_node(self, node: PrivateRabbitMQ) -> None:
        """An orderly stop of one node (SIGTERM to its process); its data stays."""
        node._stop_node()

    def kill_node(self, node: PrivateRabbitMQ) -> None:
        node.kill()

    def start_node(self, node: PrivateRabbitMQ, timeout: float = 120) -> None:
        """Start a stopped or killed node on its data; it rejoins the cluster."""
        node.start(timeout)
        self.wait_clustered(timeout)

    def stop(self) -> None:
        for node in self.nodes:
            node._stop_node()
        if self._own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "RabbitMQCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Vhost:
    def __init__(self, prefix: str, host: str = "127.0.0.1", port: int = 5672):
        self.name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.host, self.port = host, port
        self.amqp_uri = f"amqp://guest:guest@{host}:{port}/{quote(self.name, safe='')}"
        self._service_users: list[str] = []

    def __enter__(self) -> "Vhost":
        _rabbitmqctl("add_vhost", self.name)
        _rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        return self

    def service_users(self, services: list[str] | None = None) -> dict[str, str]:
        """A user per service on this host (removed with it): {service: amqp_uri}."""
        uris = service_users(self.name, self.host, self.port, services)
        self._service_users.extend(uris)
        return uris

    def __exit__(self, *exc) -> None:
        _rabbitmqctl("delete_vhost", self.name)
        if self._service_users:
            delete_service_users(self.name, self._service_users)


def _rabbitmqctl(*args: str) -> None:
    command = system.as_root([system.find("rabbitmqctl") or "rabbitmqctl", *args])
    subprocess.run(command, check=True, capture_output=True, timeout=60)


# --- a user per service, with the least permissions ------------------------------------

RETRY_RESOURCES = r"hocvu\.retry\.[0-9]+s"  # the delay queues and their exchanges
DEFAULT_EXCHANGE = "amq.default"


def known_services() -> list[str]:
    """Every service that publishes or consumes an event (hocvu.contracts)."""
    return sorted(set(contracts.SOURCES.values())
                  | {service for subscribers in contracts.SUBSCRIBERS.values()
                     for service, _ in subscribers})


def consumed_queues(service: str) -> list[str]:
    """The queues `service` consumes: evt-<source>-<event_type>--<service>.<method>."""
    return [f"evt-{contracts.SOURCES[event_type]}-{event_type}--{name}.{method}"
            for event_type, subscribers in contracts.SUBSCRIBERS.items()
            for name, method in subscribers if name == service]


def service_permissions(service: str) -> dict[str, str]:
    """RabbitMQ's (configure, write, read) regular expressions for `service`'s own user.

    A service declares its own exchange `<service>.events`, the queues it consumes (and
    their `.dlq`), the queues of its events' known subscribers (a publisher declares them
    before its first publish, hocvu.topology) and the shared delay queues; its consumers
    declare the exchanges of the events they consume (nameko does; declaring an existing
    exchange changes nothing). It publishes to its own exchange, to the delay exchanges
    and, for dead letters and retries, to the default exchange. It reads its own queues.
    Binding a queue needs write on the queue and read on the exchange. Its instances nudge
    one another (hocvu.nudges) on its own exchange `<service>.nudges`, each from a queue of
    its own (`<service>.nudges.<32 hex digits>`). Nothing else: not another service's queue,
    not another service's exchange to publish to.
    """
    consumed = consumed_queues(service)
    sources = sorted({name.split("-")[1] for name in consumed})
    fed = [queue.name for queue in topology.known_subscriber_queues(service, {})]
    own = f"{service}.events"
    source_exchanges = [f"{source}.events" for source in sources]
    nudges = topology.nudge_exchange(service)
    nudge_queues = re.escape(topology.nudge_queue(service, "")) + topology.NUDGE_INSTANCE

    def exactly(*names: str, patterns: tuple[str, ...] = ()) -> str:
        return "^(" + "|".join([*(re.escape(name) for name in names), *patterns]) + ")$"

    return {
        "configure": exactly(own, *source_exchanges, *consumed,
                             *(topology.dead_letter_queue_name(q) for q in consumed), *fed,
                             nudges, patterns=(RETRY_RESOURCES, nudge_queues)),
        "write": exactly(own, DEFAULT_EXCHANGE, *consumed, *fed, nudges,
                         patterns=(RETRY_RESOURCES, nudge_queues)),
        "read": exactly(own, *source_exchanges, *consumed, nudges,
                        patterns=(RETRY_RESOURCES, nudge_queues)),
    }


def service_user_name(service: str, vhost: str) -> str:
    """`hocvu-<service>` on the default virtual host; elsewhere the virtual host is in the
    name, as users are the broker's, not the host's, and throwaway hosts come and go."""
    return f"hocvu-{service}" if vhost == "/" else f"hocvu-{service}@{vhost}"


def password_hash(password: str) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def service_users(vhost: str = "/", host: str = "127.0.0.1", port: int = 5672,
                  services: list[str] | None = None) -> dict[str, str]:
    """Create or reset a user per service on `vhost` (new random passwords, the least
    permissions) in one `rabbitmqctl import_definitions`; return {service: amqp_uri}."""
    services = services or known_services()
    passwords = {service: secrets.token_urlsafe(24) for service in services}
    definitions = {
        "users": [{"name": service_user_name(service, vhost),
                   "password_hash": password_hash(password),
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""}
                  for service, password in passwords.items()],
        "permissions": [{"user": service_user_name(service, vhost), "vhost": vhost,
                         **service_permissions(service)} for service in services],
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(definitions, file)
        file.flush()
        Path(file.name).chmod(0o644)  # rabbitmqctl may read it as the rabbitmq user
        _rabbitmqctl("import_definitions", file.name)
    path = "/" + quote(vhost, safe="")
    return {service: f"amqp://{quote(service_user_name(service, vhost), safe='')}:"
                     f"{quote(password, safe='')}@{host}:{port}{path}"
            for service, password in passwords.items()}


def delete_service_users(vhost: str, services: list[str] | None = None) -> None:
    """Remove the users `service_users(vhost)` made (each in parallel: rabbitmqctl is slow)."""
    runs = [subprocess.Popen(system.as_root([system.find("rabbitmqctl") or "rabbitmqctl",
                                             "delete_user", service_user_name(service, vhost)]),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for service in services or known_services()]
    for run in runs:
        run.wait(timeout=60)
