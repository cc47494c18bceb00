"""A service whose container dies a second after it starts (an error in one of its threads
that nameko cannot handle), for the test that its process then ends with an error status
(tests/integration/test_devstack_processes.py)."""
import eventlet
from nameko.extensions import DependencyProvider

from hocvu.messaging import subscribe


class DiesSoon(DependencyProvider):
    def start(self):
        def fail():
            eventlet.sleep(1)
            raise ConnectionResetError("a thread of the container failed")

        self.container.spawn_managed_thread(fail, identifier="dies_soon")


class DyingService:
    name = "dying"
    dies = DiesSoon()

    @subscribe("lessons", "course_completed")
    def never_called(self, event):
        pass
