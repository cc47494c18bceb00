"""The platform under test, as `make run` starts it but all of its own: RabbitMQ reused (or
installed and started) with a throwaway virtual host, a SecantusDB per service on free ports
with their data in the run's folder (or the province's own MongoDB, --mongo-uri), the SMS simulator recording every message it accepts, the four
services (some in several instances) and the nginx edge, each a separate process."""
import time
from dataclasses import dataclass, field
from pathlib import Path

import pika
import psutil
import pymongo
import requests

from hocvu_tools.devstack import config, proxy
from hocvu_tools.devstack.processes import Process, free_port
from hocvu_tools.devstack.rabbitmq import Vhost, ensure_rabbitmq
from hocvu_tools.devstack.stack import SERVICES, Stack, StackSettings
from hocvu_tools.devstack.store import ServiceStores
from hocvu.topology import all_subscriber_queue_names, dead_letter_queue_name


@dataclass
class Deployment:
    """How many processes of each service; one each unless named."""
    instances: dict[str, int] = field(default_factory=dict)

    def label(self) -> str:
        return ", ".join(f"{s} x{n}" for s, n in sorted(self.instances.items())) or "one each"


class BenchPlatform:
    def __init__(self, folder: Path, deployment: Deployment = Deployment(),
                 service_env: dict | None = None, store_uris: dict | None = None,
                 store_profile: str | None = None):
        """`store_uris` (service -> MongoDB URI) measures those services on stores of the
        province's own instead of starting a SecantusDB for each (`--mongo-uri`)."""
        self.folder = folder
        self.deployment = deployment
        self.external_stores = dict(store_uris or {})
        self.store_profile = store_profile or ("mongodb" if self.external_stores
                                               else "embedded")
        # staff tokens outlive a whole run (15 minutes otherwise): the load generator's requests
        # are written out before they are sent
        # identity's per-address limit on sign-in codes lifted: all the load, the sign-in
        # probe's included (probes.py), comes from one address; the per-number one stays
        self.service_env = {"STAFF_TOKEN_MINUTES": "180",
                            "CODE_LIMITS_PER_ADDRESS": "100000/600", **(service_env or {})}
        self.sms_record = folder / "sms-accepted.jsonl"
        self.stores: ServiceStores | None = None
        self.stack: Stack | None = None
        self.vhost: Vhost | None = None

    def start(self) -> "BenchPlatform":
        logs = self.folder / "logs"
        try:
            ensure_rabbitmq()
            self.vhost = Vhost("hocvu-bench").__enter__()
            own = [service for service in SERVICES if service not in self.external_stores]
            if own:
                self.stores = ServiceStores(own, self.folder / "store", logs,
                                            {service: free_port() for service in own}).start()
            self.store_uris = {**(self.stores.uris if self.stores else {}),
                               **self.external_stores}
            ports = {part: free_port() for part in {"edge", "sms_simulator", *SERVICES}}
            self.stack = Stack(StackSettings(
                amqp_uri=self.vhost.amqp_uri, mongo_uri=None, mongo_uris=self.store_uris,
                store_profile=self.store_profile,
                secrets=config.platform_secrets({}, self.folder / "secrets.env"),
                ports=ports, log_dir=logs,
                run_dir=self.folder / "run", instances=self.deployment.instances,
                service_env=self.service_env,
                simulator_args=["--record", str(self.sms_record)],
                # the load comes from one address on purpose: no per-client limits
                edge=proxy.EdgeSettings.unthrottled()))
            self.stack.start()
        except BaseException:
            self.stop()
            raise
        self.mongo = {service: pymongo.MongoClient(uri) for service, uri in self.store_uris.items()}
        return self

    @property
    def amqp_uri(self) -> str:
        return self.vhost.amqp_uri

    def db(self, service: str):
        return self.mongo[service][f"hocvu_{service}"]

    def store_operations(self) -> dict[str, dict[str, int]]:
        """Each service's store's operations of each kind (serverStatus opcounters)."""
        return {service: dict(client.admin.command("serverStatus")["opcounters"])
                for service, client in self.mongo.items()}

    def courses(self) -> dict[str, dict]:
        """The catalog's course per learner group, with its lesson ids."""
        answer = requests.get(self.stack.url("lessons", "courses"), timeout=10).json()
        return {course["group"]: requests.get(self.stack.url("lessons", f"courses/{course['id']}"),
                                              timeout=10).json() for course in answer}

    def service_processes(self) -> dict[str, Process]:
        return {name: process for name, process in self.stack.processes.items()
                if name.split("-")[0] in SERVICES}

    def resident_memory_mib(self) -> dict[str, float]:
        """Resident memory of each service process (nameko runs in one process each)."""
        memory = {}
        for name, process in self.service_processes().items():
            try:
                memory[name] = psutil.Process(process.pid).memory_info().rss / 2**20
            except psutil.NoSuchProcess:
                memory[name] = float("nan")
        return memory

    def processes(self) -> dict[str, int]:
        """Every process of the platform by name, RabbitMQ's node included: where CPU goes."""
        pids = {name: process.pid for name, process in self.stack.processes.items()}
        if self.stores:  # a store of the province's own is measured by the province
            pids.update({process.name: process.pid for process in self.stores.processes.values()})
        broker = next((p for p in psutil.process_iter(["name"]) if p.info["name"] == "beam.smp"),
                      None)
        if broker:
            pids["rabbitmq"] = broker.pid
        return pids

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) each process has used so far, children included."""
        used = {}
        for name, pid in self.processes().items():
            try:
                process = psutil.Process(pid)
                family = [process, *process.children(recursive=True)]
                used[name] = sum(sum(p.cpu_times()[:2]) for p in family)
            except psutil.NoSuchProcess:
                continue
        return used

    def sms_stats(self, reports_from: int = 0) -> dict:
        return requests.get(f"{self.stack.sms_gateway}/v1/stats",
                            params={"reports_from": reports_from}, timeout=10).json()

    def dead_letters(self) -> dict[str, int]:
        """Messages in every dead-letter queue of the platform (each should hold none)."""
        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_uri))
        try:
            counts = {}
            for queue in all_subscriber_queue_names():
                name = dead_letter_queue_name(queue)
                channel = connection.channel()
                try:
                    counts[name] = channel.queue_declare(name, passive=True).method.message_count
                    channel.close()
                except pika.exceptions.ChannelClosedByBroker:
                    counts[name] = 0  # never declared: nothing was ever dead-lettered there
            return counts
        finally:
            connection.close()

    def wait_quiet(self, done, timeout: float, poll: float = 1.0) -> float | None:
        """Poll `done()` until true; return the seconds it took, or None on timeout."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if done():
                return time.monotonic() - started
            time.sleep(poll)
        return None

    def stop(self) -> None:
        for client in getattr(self, "mongo", {}).values():
            client.close()
        if self.stack:
            self.stack.stop()
        if self.stores:
            self.stores.stop()
        if self.vhost:
            self.vhost.__exit__(None, None, None)
