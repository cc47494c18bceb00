"""Each cluster scenario gets a RabbitMQ cluster of its own: three private nodes
(hocvu_tools.devstack.rabbitmq.RabbitMQCluster) on free ports, with their data and logs in
the test's temporary folder, stopped and deleted afterwards. The journey scenarios add a
platform like the fault suite's (tests/faults/conftest.py): a store per service, the SMS
gateway simulator and the services as separate processes, on quorum queues, each service
given the cluster's nodes as failover alternates."""
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from hocvu_tools.devstack import config
from hocvu_tools.devstack.processes import free_port
from hocvu_tools.devstack.rabbitmq import RabbitMQCluster
from hocvu_tools.devstack.stack import SERVICES, Stack, StackSettings
from hocvu_tools.devstack.store import ServiceStores
from tests.faults.journeys import progress

REPORT: list[str] = []
PARTS = ("edge", "sms_simulator", *SERVICES)


@pytest.fixture
def rabbitmq_cluster(tmp_path):
    started = time.monotonic()
    progress(f"starting a 3-node RabbitMQ cluster in {tmp_path / 'rabbitmq'}")
    with RabbitMQCluster(tmp_path / "rabbitmq") as cluster:
        progress(f"cluster of {', '.join(n.nodename for n in cluster.nodes)} ready after "
                 f"{time.monotonic() - started:.1f} s")
        yield cluster


def rotated(uris: list[str], turn: int) -> str:
    """The failover list starting at another node for each service, so that the services'
    connections (and the quorum queues' leaders, placed where the declaring client is
    connected) spread over the three nodes."""
    turn %= len(uris)
    return ";".join(uris[turn:] + uris[:turn])


@dataclass
class ClusterPlatform:
    cluster: RabbitMQCluster
    stores: ServiceStores
    log_dir: Path
    stack: Stack

    @property
    def amqp_uri(self) -> str:
        """A running node's address, for the test's own broker clients."""
        return self.cluster.running_nodes()[0].amqp_uri


@contextmanager
def started_platform(tmp_path: Path, cluster: RabbitMQCluster):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    progress(f"starting the platform on the cluster (logs in {log_dir})")
    stores = ServiceStores(SERVICES, tmp_path / "stores", log_dir,
                           {service: free_port() for service in SERVICES}).start()
    node_uris = [node.amqp_uri for node in cluster.nodes]
    stack = Stack(StackSettings(
        amqp_uri=cluster.failover_uri, mongo_uri=None, mongo_uris=stores.uris,
        amqp_uris={service: rotated(node_uris, turn) for turn, service in enumerate(SERVICES)},
        secrets=config.platform_secrets({}, tmp_path / "secrets.env"),
        ports={part: free_port() for part in PARTS},
        log_dir=log_dir, run_dir=tmp_path / "run", with_edge=False,
        service_env={"QUEUE_TYPE": "quorum"},
        # as in the fault suite: delivery reports keep being retried for ~3 minutes
        simulator_args=["--callback-attempts", "12"]))
    platform = ClusterPlatform(cluster, stores, log_dir, stack)
    try:
        stack.start()
        progress("platform ready")
        yield platform
    finally:
        stack.stop()
        stores.stop()


@pytest.fixture
def cluster_platform(tmp_path, rabbitmq_cluster):
    with started_platform(tmp_path, rabbitmq_cluster) as platform:
        yield platform


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("RabbitMQ cluster: what was checked")
        for line in REPORT:
            terminalreporter.write_line(line)
