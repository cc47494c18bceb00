"""The dispatcher's reader of due messages walks next_attempt_at in narrow slices (pure logic,
with a stand-in for the collection that answers range queries over a list)."""
from datetime import datetime, timedelta, timezone

from services.notifications.due import DueReader

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)


class Messages:
    """Enough of the queue collection for DueReader: find(range).sort().limit(); a sent
    message's entry leaves the queue."""

    def __init__(self, times):
        self.docs = [{"_id": n, "lane": 0, "next_attempt_at": t, "created_at": t}
                     for n, t in enumerate(times)]
        self.decoded = 0  # documents a query touched: what the store would decode

    def find(self, query):
        when = query["next_attempt_at"]
        tests = {"$gte": lambda t, v: t >= v, "$lte": lambda t, v: t <= v,
                 "$lt": lambda t, v: t < v}
        hits = [d for d in self.docs if d["lane"] == query["lane"]
                and all(tests[op](d["next_attempt_at"], v) for op, v in when.items())]
        self.decoded += len(hits)
        return Cursor(hits)

    def send(self, batch):
        sent = {doc["_id"] for doc in batch}
        self.docs = [doc for doc in self.docs if doc["_id"] not in sent]


class Cursor:
    def __init__(self, docs):
        self.docs = docs

    def sort(self, order):
        self.docs.sort(key=lambda d: (d["next_attempt_at"], d["created_at"]))
        return self

    def limit(self, n):
        return self.docs[:n]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def drain(reader, messages, now, rounds=1000):
    sent = []
    for _ in range(rounds):
        batch, more = reader.read(now)
        messages.send(batch)
        sent += [d["_id"] for d in batch]
        if not more:
            break
    return sent


def test_a_backlog_is_read_slice_by_slice_not_all_at_every_round():
    # 2,000 messages over 20 s, all due: the first read (a sweep) sees them all once, then
    # each round decodes about one second's worth
    times = [T0 + timedelta(milliseconds=10 * n) for n in range(2000)]
    messages = Messages(times)
    reader = DueReader(messages, batch_size=100, monotonic=Clock())
    now = T0 + timedelta(seconds=30)
    sent = drain(reader, messages, now)
    assert sorted(sent) == list(range(2000))  # each once
    assert messages.decoded < 2000 + 2000 * 3  # not 2,000 per round (20 rounds: 40,000)


def test_a_message_due_later_is_read_when_its_time_comes():
    clock = Clock()
    messages = Messages([T0, T0 + timedelta(hours=9)])  # a reminder held until the morning
    reader = DueReader(messages, batch_size=100, monotonic=clock)
    assert drain(reader, messages, T0 + timedelta(seconds=1)) == [0]
    assert drain(reader, messages, T0 + timedelta(hours=8)) == []
    assert drain(reader, messages, T0 + timedelta(hours=9, seconds=1)) == [1]


def test_a_message_stamped_just_before_the_cursor_passed_is_still_read():
    clock = Clock()
    messages = Messages([])
    reader = DueReader(messages, batch_size=100, monotonic=clock)
    now = T0 + timedelta(seconds=10)
    assert drain(reader, messages, now) == []
    # written late: stamped half a second before the dispatcher's last look
    messages.docs.append({"_id": "late", "lane": 0, "created_at": now,
                          "next_attempt_at": now - timedelta(milliseconds=500)})
    assert drain(reader, messages, now + timedelta(seconds=0.2)) == ["late"]


def test_the_sweep_finds_what_the_cursor_left_behind():
    clock = Clock()
    messages = Messages([])
    reader = DueReader(messages, batch_size=100, monotonic=clock)
    now = T0 + timedelta(minutes=5)
    drain(reader, messages, now)
    messages.docs.append({"_id": "skewed", "lane": 0, "created_at": now,
                          "next_attempt_at": now - timedelta(minutes=2)})
    assert drain(reader, messages, now + timedelta(seconds=1)) == []  # behind the margin
    clock.now += 61  # a minute on: the sweep
    assert drain(reader, messages, now + timedelta(seconds=62)) == ["skewed"]


def test_a_sweep_that_finds_a_full_batch_sweeps_again_at_once():
    clock = Clock()
    messages = Messages([])
    reader = DueReader(messages, batch_size=10, monotonic=clock)
    now = T0 + timedelta(minutes=5)
    drain(reader, messages, now)
    # 35 written long after they were stamped, behind the cursor's margin
    messages.docs += [{"_id": f"late-{n}", "lane": 0, "created_at": now,
                       "next_attempt_at": now - timedelta(minutes=3)} for n in range(35)]
    clock.now += 61
    sent = []
    for _ in range(4):  # four rounds within the same second: no waiting for the next minute
        batch, _ = reader.read(now + timedelta(seconds=62))
        messages.send(batch)
        sent += [d["_id"] for d in batch]
    assert sorted(sent) == sorted(f"late-{n}" for n in range(35))


def test_a_full_round_does_not_move_the_cursor_past_a_message_written_a_moment_late():
    # another instance stamped its message before this round's read and wrote it after
    # (docs/performance.md, "More instances on the same 2 cores"): a full round must not
    # leave it behind for the next minute's sweep
    clock = Clock()
    times = [T0 + timedelta(milliseconds=10 * n) for n in range(150)]
    messages = Messages(times)
    reader = DueReader(messages, batch_size=100, monotonic=clock)
    now = T0 + timedelta(seconds=2)
    batch, more = reader.read(now)
    messages.send(batch)
    assert len(batch) == 100 and more
    messages.docs.append({"_id": "late", "lane": 0, "created_at": now,
                          "next_attempt_at": T0 + timedelta(milliseconds=5)})
    clock.now += 1
    assert "late" in drain(reader, messages, now + timedelta(seconds=1))


def test_a_read_within_the_margin_does_not_pass_a_message_written_a_moment_late():
    clock = Clock()
    messages = Messages([T0 + timedelta(milliseconds=100 * n) for n in range(1, 6)])
    reader = DueReader(messages, batch_size=100, monotonic=clock)
    reader.cursor, reader.next_sweep = T0, 1e9  # 5 s behind "now", within the margin
    now = T0 + timedelta(seconds=5)
    batch, _ = reader.read(now)
    messages.send(batch)
    assert len(batch) == 5
    messages.docs.append({"_id": "late", "lane": 0, "created_at": now,
                          "next_attempt_at": T0 + timedelta(milliseconds=900)})
    assert drain(reader, messages, now + timedelta(seconds=0.2)) == ["late"]
