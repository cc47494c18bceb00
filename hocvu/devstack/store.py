"""SecantusDB, the embedded MongoDB-wire server for development and tests."""
from pathlib import Path

import pymongo

from hocvu.devstack.processes import BIN, Process


def store_uri(port: int) -> str:
    # retryWrites=false: SecantusDB is about 30 times slower with retryable writes
    return f"mongodb://127.0.0.1:{port}/?retryWrites=false"


def secantus(port: int, storage: Path, log_dir: Path) -> Process:
    """A SecantusDB server on `port` keeping its data in `storage` (reopened intact)."""
    Path(storage).mkdir(parents=True, exist_ok=True)
    return Process("store", [str(BIN / "secantusd-py"), "--host", "127.0.0.1", "--port", str(port),
                             "--storage-path", str(storage)], log_dir)


def store_ready(uri: str) -> bool:
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=500)
    try:
        return bool(client.admin.command("ping"))
    finally:
        client.close()


def start_secantus(port: int, storage: Path, log_dir: Path, timeout: float = 60) -> Process:
    process = secantus(port, storage, log_dir).start()
    process.wait_until(lambda: store_ready(store_uri(port)), timeout)
    return process
