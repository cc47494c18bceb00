# The services run on eventlet; patch before anything else opens a socket or a thread.
import eventlet

eventlet.monkey_patch()

pytest_plugins = ["tests.support.fixtures"]
