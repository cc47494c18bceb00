"""`make run` starts a part again when it exits, with a growing pause while it keeps
exiting (hocvu_tools.devstack.supervisor)."""
import io

from hocvu_tools.devstack import supervisor
from hocvu_tools.devstack.supervisor import Supervisor


class FakePopen:
    returncode = 1


class FakeProcess:
    """A part whose exits the test decides."""
    name, log_path = "lessons", "var/log/lessons.log"

    def __init__(self):
        self.running, self.starts, self.popen, self.pid = True, 0, FakePopen(), 100

    def alive(self):
        return self.running

    def start(self):
        self.running, self.starts, self.pid = True, self.starts + 1, self.pid + 1
        return self

    def log_tail(self, lines=40):
        return "Traceback ... ConnectionResetError"


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


def test_a_part_that_exits_is_started_again_after_a_pause_that_grows_while_it_keeps_exiting():
    clock, out, process, recorded = Clock(), io.StringIO(), FakeProcess(), []
    watcher = Supervisor([process], on_restart=lambda: recorded.append(process.pid),
                         out=out, clock=clock)
    pauses = []
    for _ in range(7):
        process.running = False  # it exits at once after each start
        watcher.check()
        exited_at = clock.now
        while process.starts == len(pauses):
            clock.now += 0.5
            watcher.check()
        pauses.append(clock.now - exited_at)
    assert pauses == [1, 2, 4, 8, 16, 30, 30]
    assert watcher.restarts == 7 and recorded == list(range(101, 108))
    text = out.getvalue()
    assert "lessons exited with code 1; starting it again in 1 s (exit 1 in a row)" in text
    assert "starting it again in 30 s (exit 7 in a row)" in text
    assert "ConnectionResetError" in text and "lessons started again (pid 107)" in text


def test_a_part_that_ran_steadily_is_started_again_after_the_first_pause():
    clock, process = Clock(), FakeProcess()
    watcher = Supervisor([process], out=io.StringIO(), clock=clock)
    for _ in range(3):  # three quick exits: the pause is 4 s now
        process.running = False
        watcher.check()
        clock.now += 30
        watcher.check()
    clock.now += supervisor.STEADY_SECONDS
    process.running = False
    watcher.check()
    clock.now += supervisor.FIRST_DELAY_SECONDS
    watcher.check()
    assert process.starts == 4


def test_parts_that_keep_running_are_left_alone():
    clock, process = Clock(), FakeProcess()
    watcher = Supervisor([process], out=io.StringIO(), clock=clock)
    for _ in range(10):
        clock.now += 10
        watcher.check()
    assert process.starts == 0 and watcher.restarts == 0
