"""Ports for the processes the tests and the dev stack start: never one twice from one
process, and, when make test's two halves run side by side, never one both could pick."""
from hocvu_tools.devstack import processes


def test_a_process_never_hands_out_the_same_port_twice():
    ports = [processes.free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)


def test_each_half_of_make_test_takes_ports_of_its_own_share(monkeypatch):
    for share in (0, 1):
        monkeypatch.setenv(processes.PORT_SHARE, f"{share}/2")
        assert {processes.free_port() % 2 for _ in range(50)} == {share}
