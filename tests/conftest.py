# The services run on eventlet; patch before anything else opens a socket or a thread.
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet  # noqa: E402

eventlet.monkey_patch()

pytest_plugins = ["tests.support.fixtures", "tests.support.sms"]


def pytest_collection_modifyitems(config, items):
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
