"""Learners through the whole journey (enrollment, lessons, completion, certificate, SMS)
while a node of the 3-node RabbitMQ cluster stops, the services as separate processes on
quorum queues, each given the three nodes as failover alternates; then the fault suite's
totals (tests/faults/totals.py): nothing lost, nothing duplicated, and every service
connected again, to the nodes that remain.

HOCVU_CLUSTER_LEARNERS (default 500) learners per scenario. What each scenario counted is
printed in the terminal summary; progress lines with `-s`.
Run alone: `make test-cluster`, or `.venv/bin/pytest tests/cluster -q -s -k leaders`.
"""
import json
import os
import re
from collections import Counter

import psutil
import pytest
import requests

from hocvu import contracts
from hocvu.topology import all_subscriber_queue_names
from hocvu_tools.devstack.stack import SERVICES
from tests.cluster.conftest import REPORT
from tests.faults.journeys import Fault, JourneyDriver, progress
from tests.faults.totals import EventTap, assert_every_journey_whole, count, wait_for_quiet

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

LEARNERS = int(os.environ.get("HOCVU_CLUSTER_LEARNERS", "500"))
QUORUM = {"x-queue-type": "quorum"}
# services that consume events hold a connection all the time; the others (identity) connect
# only when their relay publishes
CONSUMERS = sorted({service for subscribers in contracts.SUBSCRIBERS.values()
                    for service, _ in subscribers})


def broker_connections(platform) -> dict[str, set[str]]:
    """{service: the nodes its process holds AMQP connections to}, from the process's own
    sockets."""
    nodes_by_port = {node.port: node.nodename for node in platform.cluster.nodes}
    connected = {}
    for service in SERVICES:
        nodes = set()
        for connection in psutil.Process(platform.stack.processes[service].pid) \
                .net_connections(kind="tcp"):
            if (connection.status == psutil.CONN_ESTABLISHED and connection.raddr
                    and connection.raddr.port in nodes_by_port):
                nodes.add(nodes_by_port[connection.raddr.port])
        connected[service] = nodes
    return connected


def consumers_per_queue(platform) -> dict[str, int]:
    listing = platform.cluster.running_nodes()[0].ctl("list_queues", "name", "consumers",
                                                      "--formatter", "json")
    return {row["name"]: row["consumers"] for row in json.loads(listing)}


def handler_retries(platform) -> int:
    """Deliveries the services' handlers failed and sent to a delay queue (their metrics)."""
    total = 0
    for service in SERVICES:
        text = requests.get(platform.stack.url_direct(service, "metrics"), timeout=10).text
        for line in text.splitlines():
            if line.startswith("hocvu_events_consumed_total{") and 'outcome="retried"' in line:
                total += int(float(line.rsplit(" ", 1)[1]))
    return total


class NodeStop:
    """The fault: stop the node `choose` picks when the fault runs; remember which it was,
    which services were connected to it and which queue leaders it held."""

    def __init__(self, platform, choose, why: str, must_hold_services: bool = False,
                 must_hold_leaders: bool = False):
        self.platform, self.choose, self.why = platform, choose, why
        self.must_hold_services, self.must_hold_leaders = must_hold_services, must_hold_leaders
        self.node = None
        self.services_on_it: list[str] = []
        self.leaders_on_it: list[str] = []

    def __call__(self) -> None:
        cluster = self.platform.cluster
        self.node = self.choose()
        self.services_on_it = sorted(s for s, nodes in broker_connections(self.platform).items()
                                     if self.node.nodename in nodes)
        self.leaders_on_it = sorted(q for q, leader in cluster.quorum_leaders().items()
                                    if leader == self.node.nodename)
        progress(f"stopping {self.node.nodename} ({self.why}): connections of "
                 f"{', '.join(self.services_on_it) or 'no service'}, leaders of "
                 f"{len(self.leaders_on_it)} quorum queues")
        cluster.stop_node(self.node)


def node_with_most_services_but_not_most_leaders(platform):
    """Of the nodes other than the leaders' (the other scenario's), the one most services
    are connected to."""
    connected = broker_connections(platform)
    leaders_node = node_with_most_leaders(platform)
    return max((node for node in platform.cluster.running_nodes() if node is not leaders_node),
               key=lambda node: sum(node.nodename in nodes for nodes in connected.values()))


def node_with_most_leaders(platform):
    held = Counter(platform.cluster.quorum_leaders().values())
    return max(platform.cluster.running_nodes(), key=lambda node: held[node.nodename])


def drive_and_check(platform, name: str, stop: NodeStop):
    tap = EventTap(platform.amqp_uri, QUORUM)
    tap.bind()
    before = broker_connections(platform)
    assert all(before[s] for s in CONSUMERS), f"a consumer without a connection: {before}"
    driver = JourneyDriver(platform.stack, LEARNERS)
    drive = driver.run([Fault(f"stop a node ({stop.why})", stop, after=0.3)])
    assert not drive.errors, drive.errors[:5]
    injection, = drive.injections
    assert injection.error is None, injection.error
    # the node stopped while learners were still coming
    assert 0 < injection.finished_before and injection.finished_after < LEARNERS, injection
    assert drive.retried_requests <= drive.retry_bound(), \
        (drive.retried_requests, drive.retry_bound(), drive.retry_causes)
    # the stop meant what the scenario says: services had to move, queues to elect leaders
    assert stop.services_on_it or not stop.must_hold_services, stop.services_on_it
    assert stop.leaders_on_it or not stop.must_hold_leaders, stop.leaders_on_it
    assert not stop.node.running()

    progress(f"{name}: waiting until the platform is quiet")
    snapshot = lambda: count(platform.stores.uris, platform.stack.settings.database_prefix,  # noqa: E731
                             platform.stack.sms_gateway, platform.amqp_uri)
    totals, quiet_after = wait_for_quiet(LEARNERS, snapshot)
    tap.amqp_uri = platform.amqp_uri  # the node it was bound through may be the stopped one
    published = tap.drain()

    assert_every_journey_whole(totals, published, drive.journeys, LEARNERS)
    crashed = [n for n, process in platform.stack.processes.items() if not process.alive()]
    assert not crashed, f"crashed: {crashed}"

    # every service connected again, and only to the nodes that remain; every queue it
    # consumes has its consumer back
    after = broker_connections(platform)
    remaining = {node.nodename for node in platform.cluster.running_nodes()}
    assert all(after[s] for s in CONSUMERS), f"a consumer without a connection: {after}"
    assert all(nodes <= remaining for nodes in after.values()), after
    consumers = consumers_per_queue(platform)
    assert all(consumers.get(queue, 0) >= 1 for queue in all_subscriber_queue_names()), \
        {q: consumers.get(q, 0) for q in all_subscriber_queue_names()}
    retried_events = handler_retries(platform)
    # how long each consumer that lost its node took to consume again (hocvu.messaging logs it)
    reconnected = {path.stem: seconds for path in platform.log_dir.glob("*.log")
                   if (seconds := re.findall(r"consumes again, ([0-9.]+) s after",
                                             path.read_text(errors="replace")))}

    short = lambda node: re.sub(r"@.*", "", node)  # noqa: E731
    REPORT.append(
        f"{name}: {LEARNERS} learners driven in {drive.seconds:.1f} s, quiet "
        f"{quiet_after:.1f} s after the load; {stop.node.nodename} stopped at "
        f"{injection.started_at:.0f} s ({injection.finished_before}-"
        f"{injection.finished_after} journeys finished; the stop took "
        f"{injection.seconds:.1f} s), with the connections of {len(stop.services_on_it)} "
        f"services ({', '.join(stop.services_on_it)}) and the leaders of "
        f"{len(stop.leaders_on_it)} quorum queues")
    REPORT.append(
        f"  ... enrollments {totals.enrollments}, lesson plans {totals.plans} "
        f"({totals.completed_plans} completed), certificates {totals.certificates}, SMS "
        f"delivered enrollment_confirmed {totals.delivered('enrollment_confirmed')} / "
        f"certificate_issued {totals.delivered('certificate_issued')}, SMS at the gateway "
        f"{totals.sms_received} (none twice to a learner), dead letters "
        f"{sum(totals.dead_letters.values())}, events not yet relayed "
        f"{sum(totals.relay_behind.values())}")
    REPORT.append(f"  ... {published.describe()}")
    REPORT.append(
        f"  ... retries: {drive.retried_requests} HTTP requests retried by clients (bound "
        f"{drive.retry_bound()}"
        f"{': ' + ', '.join(f'{c} {n}' for c, n in drive.retry_causes.most_common()) if drive.retry_causes else ''}"
        f"), {retried_events} event deliveries retried through delay queues; consumers "
        f"consuming again after (s): {reconnected or 'none lost their node'}; services "
        f"connected before: "
        + ", ".join(f"{s} {'+'.join(sorted(map(short, before[s]))) or '-'}" for s in SERVICES)
        + "; after: "
        + ", ".join(f"{s} {'+'.join(sorted(map(short, after[s]))) or '-'}" for s in SERVICES))
    return totals


def test_a_node_stops_mid_stream(cluster_platform):
    """A node services are connected to (not the one holding the most queue leaders: that
    is the next scenario) stops (SIGTERM, an orderly shutdown) while learners keep coming:
    its clients connect to the next node of their failover list, the leaders it holds, if
    any, move, and nothing is lost or doubled."""
    drive_and_check(cluster_platform, "a node stopped mid-stream",
                    NodeStop(cluster_platform,
                             lambda: node_with_most_services_but_not_most_leaders(
                                 cluster_platform),
                             "services connected to it, not the leaders' node",
                             must_hold_services=True))


def test_the_node_holding_the_queue_leaders_stops(cluster_platform):
    """The node holding the most quorum queue leaders stops mid-stream: every one of
    those queues elects a leader on the two remaining nodes, with messages in them,
    consumers on them and publishers confirming to them."""
    drive_and_check(cluster_platform, "the queue leaders' node stopped",
                    NodeStop(cluster_platform,
                             lambda: node_with_most_leaders(cluster_platform),
                             "the one holding the most queue leaders",
                             must_hold_leaders=True))
