"""SecantusDB, the embedded MongoDB-wire server for development and tests: a child process on
127.0.0.1, its data in a folder of its own (reopened intact on the next start)."""
from pathlib import Path

import pymongo

from hocvu.devstack.processes import BIN, Process, StartError, port_holder


def store_uri(port: int) -> str:
    # retryWrites=false: SecantusDB is about 30 times slower with retryable writes
    return f"mongodb://127.0.0.1:{port}/?retryWrites=false"


def secantus(port: int, storage: Path, log_dir: Path, name: str = "store") -> Process:
    Path(storage).mkdir(parents=True, exist_ok=True)
    return Process(name, [BIN / "secantusd-py", "--host", "127.0.0.1", "--port", str(port),
                          "--storage-path", Path(storage).resolve()], log_dir)


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
