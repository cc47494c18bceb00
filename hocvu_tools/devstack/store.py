"""SecantusDB, the embedded MongoDB-wire server for development and tests: a child process on
127.0.0.1, its data in a folder of its own (reopened intact on the next start)."""
from pathlib import Path

import pymongo

from hocvu_tools.devstack.processes import BIN, Process, StartError, port_holder


def store_uri(port: int) -> str:
    # retryWrites=false: SecantusDB is about 30 times slower with retryable writes
    return f"mongodb://127.0.0.1:{port}/?retryWrites=false"


# the relay resumes from its saved token through the store's change history (hocvu.outbox):
# keep a week of it, and more entries than a launch day writes, so that a relay stopped for a
# while (a long outage, a weekend) still finds where it left off
OPLOG_RETENTION = ["--oplog-retention-seconds", str(7 * 24 * 3600),
                   "--oplog-max-entries", str(5_000_000)]


# SecantusDB acknowledges a write before its log reaches the disk: killed with SIGKILL it
# loses its last few acknowledged writes. --sync-on-commit fsyncs every commit first, as
# MongoDB does for a write with j:true, at a price (inserts about 6.5 times slower: 209/s
# against 1,351/s measured on the 2-core dev machine). Only a test that crashes a store needs
# it; without it such a test would count the store's own losses, not the platform's.
SYNC_ON_COMMIT = ["--sync-on-commit"]


def secantus(port: int, storage: Path, log_dir: Path, name: str = "store",
             sync_on_commit: bool = False) -> Process:
    Path(storage).mkdir(parents=True, exist_ok=True)
    return Process(name, [BIN / "secantusd-py", "--host", "127.0.0.1", "--port", str(port),
                          "--storage-path", Path(storage).resolve(), *OPLOG_RETENTION,
                          *(SYNC_ON_COMMIT if sync_on_commit else [])], log_dir)


def store_ready(uri: str) -> bool:
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500)
    try:
        return bool(client.admin.command("ping").get("ok"))
    finally:
        client.close()


def start_secantus(port: int, storage: Path, log_dir: Path, timeout: float = 60,
                   name: str = "store") -> Process:
    """Start SecantusDB and return once it answers a ping (stop it with `.stop()`)."""
    # else a server already on the port would answer our ping and pass for ours
    holder = port_holder(port)
    if holder:
        raise StartError(f"cannot start SecantusDB on 127.0.0.1:{port}: the port is taken by "
                         f"{holder}")
    process = secantus(port, storage, log_dir, name).start()
    try:
        process.wait_until(lambda: store_ready(store_uri(port)), timeout,
                           what=f"answering ping on port {port}")
    except BaseException:
        process.stop()
        raise
    return process


class ServiceStores:
    """One SecantusDB per service, as production gives each service a database of its own:
    `<data_dir>/<service>` on `ports[service]`, logging to `<log_dir>/store-<service>.log`.
    `sync_on_commit`: fsync each commit before acknowledging it (SYNC_ON_COMMIT: for a test
    that kills the stores with SIGKILL, never needed otherwise)."""

    def __init__(self, services, data_dir: Path, log_dir: Path, ports: dict[str, int],
                 sync_on_commit: bool = False):
        self.services = tuple(services)
        self.sync_on_commit = sync_on_commit
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir)
        self.ports = dict(ports)
        self.processes: dict[str, Process] = {}

    def uri(self, service: str) -> str:
        return store_uri(self.ports[service])

    @property
    def uris(self) -> dict[str, str]:
        return {service: self.uri(service) for service in self.services}

    def start(self, timeout: float = 60) -> "ServiceStores":
        """Start them all at once, then wait for each; stop all if one fails."""
        try:
            for service in self.services:
                holder = port_holder(self.ports[service])
                if holder:
                    raise StartError(f"cannot start the {service} store on 127.0.0.1:"
                                     f"{self.ports[service]}: the port is taken by {holder}")
                self.processes[service] = self._process(service).start()
            for service, process in self.processes.items():
                process.wait_until(lambda s=service: store_ready(self.uri(s)), timeout,
                                   what=f"answering ping on port {self.ports[service]}")
        except BaseException:
            self.stop()
            raise
        return self

    def _process(self, service: str) -> Process:
        return secantus(self.ports[service], self.data_dir / service, self.log_dir,
                        name=f"store-{service}", sync_on_commit=self.sync_on_commit)

    def restart(self, service: str, timeout: float = 60) -> None:
        """Start one again on the same data (after it was stopped or killed)."""
        self.processes[service] = self._process(service).start()
        self.processes[service].wait_until(lambda: store_ready(self.uri(service)), timeout,
                                           what=f"answering ping on port {self.ports[service]}")

    def kill(self) -> None:
        """SIGKILL every store at once, as a power cut would (start each again with restart)."""
        for process in self.processes.values():
            process.kill()

    def stop(self) -> None:
        for process in self.processes.values():
            process.request_stop()
        for process in self.processes.values():
            process.wait_stopped()
