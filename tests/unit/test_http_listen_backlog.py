"""A crowd of connections at once (1,018 sites uploading on a launch morning, through the
edge) waits in the kernel for the service's accept loop instead of being dropped: a dropped
connect is retried by TCP after 1, 3, 7, 15, 31 s, past the edge's 60 s for the last ones."""
import socket

from hocvu import http

CROWD = 300  # more than eventlet's default backlog of 50


def connect_all(port: int) -> list:
    clients = []
    try:
        for _ in range(CROWD):
            # nobody accepts: each connect completes only if the kernel queues it
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=2))
    except OSError:
        pass
    return clients


def test_a_crowd_of_connections_is_held_until_the_service_accepts_them():
    server = http.listen(("127.0.0.1", 0))   # what every service's web server listens with
    clients = connect_all(server.getsockname()[1])
    try:
        assert len(clients) == CROWD  # eventlet's default held 51 here
    finally:
        for client in clients:
            client.close()
        server.close()
