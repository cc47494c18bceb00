"""The machine a run measured, printed beside every figure: figures mean little without it."""
import os
import platform
from importlib.metadata import version

import psutil
import pymongo


def describe(mongo_uri: str, amqp_uri: str) -> dict:
    memory = psutil.virtual_memory()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(memory.total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "rabbitmq": _rabbitmq_version(amqp_uri),
        "store": _store_version(mongo_uri),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _rabbitmq_version(amqp_uri: str) -> str:
    import pika  # here: only this function needs it
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    try:
        properties = connection._impl.server_properties
        product = properties.get("product", b"RabbitMQ")
        version = properties.get("version", b"?")
        decode = lambda v: v.decode() if isinstance(v, bytes) else str(v)  # noqa: E731
        return f"{decode(product)} {decode(version)}"
    finally:
        connection.close()


def _store_version(mongo_uri: str) -> str:
    client = pymongo.MongoClient(mongo_uri)
    try:
        wire = client.server_info().get("version", "?")
    finally:
        client.close()
    # the harness always starts the embedded store; it answers with a MongoDB version
    return f"SecantusDB {version('SecantusDB')} (answers as MongoDB {wire})"
