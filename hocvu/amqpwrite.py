"""Several AMQP frames sent to the broker in one write.

py-amqp writes each frame (an acknowledgement, a published message) to the socket as soon as
it is made: a system call each. During a launch burst 88 % of what acknowledging a batch of
events cost the consumers was those calls (py-spy, docs/performance.md), and the relays'
publishing of a read's events was the same. Inside `one_write(connection)` the frames written
on that connection are gathered and sent together when the block ends: the broker receives
the same frames, in the same order.

It changes how py-amqp's transport writes (its `_write`, the socket's `sendall` once
connected) for the time of the block, and sends the gathered frames under py-amqp's own
frame lock (`frame_writer`'s `buffer_lock`), so that no other writer's frame can come between
their bytes. A py-amqp without that lock, or a connection not open, is left alone: its
frames go out one by one, as before. A green thread that writes on the connection during the
block has its frames gathered too, in order. A failed send raises at the end of the block,
as the first of its frames would have.
"""
import inspect
from contextlib import contextmanager

_GATHERING = "_hocvu_frames"


def _frame_lock(connection):
    """py-amqp's lock around each frame written on `connection`, or None."""
    writer = getattr(connection, "_frame_writer", None)
    if writer is None:
        return None
    try:
        lock = inspect.getclosurevars(writer).nonlocals.get("buffer_lock")
    except TypeError:
        return None
    return lock if hasattr(lock, "acquire") and hasattr(lock, "release") else None


@contextmanager
def one_write(connection):
    """`connection`: a py-amqp Connection (a kombu Connection's `.connection`, a channel's
    `.connection`), or None."""
    # the private names: py-amqp's `transport` property connects a connection not open
    transport = getattr(connection, "_transport", None)
    lock = _frame_lock(connection)
    # a closed connection keeps its frame writer but has no transport
    if transport is None or lock is None or "_write" not in vars(transport) \
            or hasattr(transport, _GATHERING):
        yield  # nothing to gather on, or an enclosing block gathers already
        return
    send = transport._write
    frames: list[bytes] = []
    setattr(transport, _GATHERING, frames)
    # py-amqp hands over a view of the one buffer it reuses for every frame: copied
    transport._write = lambda data: frames.append(bytes(data))
    try:
        yield
    finally:
        with lock:
            transport._write = send
            delattr(transport, _GATHERING)
            if frames:
                send(b"".join(frames))
