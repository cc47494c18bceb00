# The services run on eventlet; patch before anything else opens a socket or a thread.
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet  # noqa: E402
import pytest  # noqa: E402

eventlet.monkey_patch()

pytest_plugins = ["tests.support.fixtures", "tests.support.sms"]


# a test under these folders starts processes or needs a broker: it must say so with one of
# the markers, or `-m integration` misses it and `-m "not integration"` runs it
PROCESS_MARKERS = {"integration", "e2e", "faults", "bench", "browser", "cluster"}
PROCESS_FOLDERS = ("integration", "e2e", "faults", "bench", "cluster")


def unmarked_process_tests(items) -> list[str]:
    return [item.nodeid for item in items
            if item.nodeid.split("/")[1:2] and item.nodeid.split("/")[1] in PROCESS_FOLDERS
            and not PROCESS_MARKERS & {mark.name for mark in item.iter_markers()}]


def pytest_collection_modifyitems(config, items):
    unmarked = unmarked_process_tests(items)
    if unmarked:
        more = f" and {len(unmarked) - 10} more" if len(unmarked) > 10 else ""
        raise pytest.UsageError("tests that start processes carry none of the markers "
                                f"{sorted(PROCESS_MARKERS)}: {', '.join(unmarked[:10])}{more}")
    deselect_cluster(config, items)


def deselect_cluster(config, items):
    """The `cluster` marker (three RabbitMQ nodes and a platform per scenario, 5 to 6
    minutes) is left out of a plain `pytest`/`make test`: it runs when asked for, with
    `-m cluster` (`make test-cluster`) or by naming tests/cluster."""
    if "cluster" in (config.option.markexpr or "") or any(
            "tests/cluster" in str(arg) for arg in config.args):
        return
    deselected = [item for item in items if item.get_closest_marker("cluster")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("cluster")]
