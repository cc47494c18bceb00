# The services run on eventlet; patch before anything else opens a socket or a thread.
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet  # noqa: E402

eventlet.monkey_patch()

pytest_plugins = ["tests.support.fixtures", "tests.support.sms"]
