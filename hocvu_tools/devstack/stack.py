"""The platform as separate processes: the SMS gateway simulator, the six services (each
`nameko run` with its own config) and the nginx edge. `make run` and the end-to-end tests
both start it through this class; RabbitMQ and the store are given to it."""
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import requests

from hocvu_tools.devstack import proxy
from hocvu_tools.devstack.processes import BIN, Process, free_port

SERVICES = ("enrollment", "lessons", "certificates", "notifications", "identity", "reporting")
# the province admin identity creates on its first start (BOOTSTRAP_ADMIN_*): the account
# `make run` prints and the tools sign in with
BOOTSTRAP_ADMIN = "admin"
PROVINCE = "38"
# eventlet's multi-line deprecation notice, printed when nameko's command line imports it,
# would break the one-JSON-object-per-line logs (docs/architecture.md)
QUIET_EVENTLET_NOTICE = "ignore::Warning:nameko.cli.commands"
STARTUP_ORDER = ("identity", "enrollment", "certificates", "notifications", "reporting",
                 "lessons")


@dataclass
class StackSettings:
    amqp_uri: str
    mongo_uri: str | None            # every service's store, unless mongo_uris names its own
    secrets: dict[str, str]          # hocvu_tools.devstack.config.platform_secrets
    ports: dict[str, int]            # edge, sms_simulator and one per service
    log_dir: Path
    run_dir: Path
    database_prefix: str = "hocvu_"
    with_edge: bool = True
    service_env: dict[str, str] = field(default_factory=dict)  # e.g. STORE_COMMAND_LOG
    # more than one process of a service: the extra ones ("lessons-2"...) share its queues
    # and database, each on an HTTP port of its own (the edge routes to the first)
    instances: dict[str, int] = field(default_factory=dict)
    simulator_args: list[str] = field(default_factory=list)  # e.g. --record FILE
    # the simulator signs delivery reports with it and notifications checks them; new for
    # each platform (both sides start together), passed in the environment, not in argv
    sms_callback_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    edge: proxy.EdgeSettings = field(default_factory=proxy.EdgeSettings)  # limits, CORS
    # a service's own broker login (hocvu_tools.devstack.rabbitmq.service_users), else amqp_uri
    amqp_uris: dict[str, str] = field(default_factory=dict)
    # a service's own store (hocvu_tools.devstack.store.ServiceStores), else mongo_uri
    mongo_uris: dict[str, str] = field(default_factory=dict)
    # hocvu.storeprofile: "embedded" for the SecantusDB stores started here
    store_profile: str = "embedded"


class Stack:
    def __init__(self, settings: StackSettings):
        self.settings = settings
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        self.ports = settings.ports
        self.base_url = f"http://127.0.0.1:{self.ports['edge']}"
        self.sms_gateway = f"http://127.0.0.1:{self.ports['sms_simulator']}"
        self.processes: dict[str, Process] = {}

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/api/identity"

    @property
    def admin_password(self) -> str:
        return self.settings.secrets["BOOTSTRAP_ADMIN_PASSWORD"]

    def service_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def url_direct(self, service: str, path: str = "") -> str:
        """A service's route on its own port, not through the edge."""
        return f"{self.service_url(service)}/api/{service}/{path.lstrip('/')}"

    def url(self, service: str, path: str = "") -> str:
        """A service's route, through the edge when there is one."""
        base = self.base_url if self.settings.with_edge else self.service_url(service)
        return f"{base}/api/{service}/{path.lstrip('/')}"

    def instance_names(self, service: str) -> list[str]:
        count = self.settings.instances.get(service, 1)
        return [service] + [f"{service}-{k}" for k in range(2, count + 1)]

    def service_process(self, service: str, instance: str | None = None,
                        port: int | None = None) -> Process:
        s = self.settings
        env = {
            "AMQP_URI": s.amqp_uris.get(service, s.amqp_uri),
            "MONGO_URI": s.mongo_uris.get(service, s.mongo_uri),
            "STORE_PROFILE": s.store_profile,
            "MONGO_DATABASE": f"{s.database_prefix}{service}",
            "HTTP_ADDRESS": f"127.0.0.1:{port or self.ports[service]}",
            **s.secrets,
            # tokens name the public address as their issuer; services fetch its keys directly
            "AUTH_ISSUER": self.issuer,
            "AUTH_JWKS_URL": self.url_direct("identity", ".well-known/jwks.json"),
            "BOOTSTRAP_ADMIN_USERNAME": BOOTSTRAP_ADMIN,
            "BOOTSTRAP_ADMIN_PROVINCE": PROVINCE,
            "PUBLIC_BASE_URL": self.base_url,
            "SMS_GATEWAY_URL": self.sms_gateway,
            "SMS_CALLBACK_URL": f"{self.service_url('notifications')}"
                                "/api/notifications/delivery-reports",
            "SMS_CALLBACK_SECRET": s.sms_callback_secret,
            "PYTHONWARNINGS": QUIET_EVENTLET_NOTICE,
            **s.service_env,
        }
        return Process(instance or service, [str(BIN / "python"), "-m", "nameko", "run", "--config",
                                 f"services/{service}/config.yaml", f"services.{service}.service"],
                       s.log_dir, env)

    def start(self) -> None:
        """Start everything and wait until every part answers; stop all on failure."""
        try:
            simulator = self._launch("sms_simulator", Process("sms_simulator", [
                str(BIN / "python"), "-m", "sms_simulator", "--host", "127.0.0.1",
                "--port", str(self.ports["sms_simulator"]), *self.settings.simulator_args],
                self.settings.log_dir, {"SMS_CALLBACK_SECRET": self.settings.sms_callback_secret}))
            simulator.wait_http(f"{self.sms_gateway}/health")
            # one at a time, each answering before the next starts: on an empty store, one
            # service creating collections and indexes while another runs a transaction can
            # deadlock SecantusDB; lessons last, as its seeding sets enrollment's
            # transactions off
            for service in STARTUP_ORDER:
                for instance in self.instance_names(service):
                    port = self.ports[service] if instance == service else free_port()
                    self._launch(instance, self.service_process(service, instance, port))
                    self.processes[instance].wait_http(
                        f"http://127.0.0.1:{port}/api/{service}/health/ready", timeout=90)
            if self.settings.with_edge:
                self._launch("nginx", proxy.nginx(
                    f"127.0.0.1:{self.ports['edge']}", self.ports, self.settings.run_dir,
                    self.settings.log_dir, self.settings.edge))
            # the edge does not route health: a route every caller may read shows the way works
            for service in SERVICES:
                self.processes[service].wait_http(self.url(service, "openapi.json"), timeout=90)
            self.processes["enrollment"].wait_until(self._catalog_arrived, timeout=60)
        except BaseException:
            self.stop()
            raise

    def restart_service(self, service: str) -> None:
        """Start a service again (after it stopped or was killed) and wait until it answers."""
        self.restart_services([service])

    def restart_services(self, services: list[str]) -> None:
        """Start several services again at once, then wait until each answers."""
        for service in services:
            self._launch(service, self.service_process(service))
        for service in services:
            self.processes[service].wait_http(self.url_direct(service, "health/ready"),
                                              timeout=90)

    def _launch(self, name: str, process: Process) -> Process:
        self.processes[name] = process.start()
        return process

    def _catalog_arrived(self) -> bool:
        courses = requests.get(self.url_direct("enrollment", "courses"), timeout=2)
        if courses.status_code != 200:
            return False
        body = courses.json()  # a list, or a page {"items": [...]}
        return len(body["items"] if isinstance(body, dict) else body) > 0

    def stop(self) -> None:
        """Stop every part at once: each finishes its own in-flight work."""
        for process in self.processes.values():
            process.request_stop()
        for process in self.processes.values():
            process.wait_stopped()
