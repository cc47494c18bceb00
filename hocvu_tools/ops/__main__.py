"""python -m hocvu_tools.ops: for operators.

    dlq {list,show,replay,purge}   the dead-letter queues (RabbitMQ)
    delay-queues migrate           replace delay queues an earlier release declared otherwise
    sms {stuck,failed}             SMS that did not reach a learner, and why (notifications' store)
"""
import argparse
import json
import os
import sys

import pika
import pymongo.errors
from tqdm import tqdm

from hocvu_tools.ops import sms
from hocvu_tools.ops.deadletters import DeadLetters, NoSuchQueue, dead_letter_queue
from hocvu_tools.ops.delayqueues import DelayQueues

USAGE_ERROR = 2


def _list(dead: DeadLetters, args) -> int:
    counts = dead.counts()
    width = max(len(name) for name in counts)
    print(f"{'dead-letter queue':<{width}}  messages")
    for name, depth in counts.items():
        print(f"{name:<{width}}  {'not declared yet' if depth is None else depth}")
    print(f"{'total':<{width}}  {sum(d or 0 for d in counts.values())}")
    return 0


def _show(dead: DeadLetters, args) -> int:
    queue = dead_letter_queue(args.queue)
    dead.depth(queue)
    letters = [letter.summary() for letter in dead.peek(queue, args.limit)]
    if args.json:
        print(json.dumps(letters, ensure_ascii=False, indent=2, default=str))
        return 0
    print(f"{queue}: {dead.depth(queue)} message(s); showing {len(letters)}")
    for s in letters:
        print(f"\n#{s['position']} {s['event_type'] or '?'} {s['event_id'] or ''}\n"
              f"  reason:   {s['reason']}\n"
              f"  attempts: {s['attempts']}   failed at: {s['failed_at']}   service: {s['service']}\n"
              f"  from:     exchange {s['exchange']!r}, routing key {s['routing_key']!r}, "
              f"queue {s['queue']!r}\n  body:     {s['body']}")
    return 0


def _replay(dead: DeadLetters, args) -> int:
    queue = dead_letter_queue(args.queue)
    dead.depth(queue)
    if args.all:
        def selected(letter):
            return True
    elif args.event_id:
        wanted = set(args.event_id)

        def selected(letter):
            return letter.event_id in wanted
    else:
        def selected(letter):
            return letter.position <= args.first

    def progress(items):
        return tqdm(items, desc=f"replaying {queue}", unit="msg", file=sys.stderr)

    replayed, left = dead.replay(queue, selected, progress)
    print(f"replayed {replayed}, left {left} in {queue}")
    return 0


def _purge(dead: DeadLetters, args) -> int:
    queue = dead_letter_queue(args.queue)
    depth = dead.depth(queue)
    if not args.yes:
        if not sys.stdin.isatty():
            print(f"refusing to purge {queue} without --yes: no terminal to confirm on",
                  file=sys.stderr)
            return USAGE_ERROR
        typed = input(f"Delete the {depth} message(s) in {queue} for good? "
                      f"Type the queue name to confirm: ")
        if typed.strip() != queue:
            print("not confirmed; nothing deleted", file=sys.stderr)
            return USAGE_ERROR
    print(f"purged {dead.purge(queue)} message(s) from {queue}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m hocvu_tools.ops", description=(
        "Operate hocvu: dead-letter queues (what failed for good, why, and sending it back) "
        "and SMS that did not reach a learner."))
    top.add_argument("--amqp-uri", default=os.environ.get(
        "AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/"), help="default: $AMQP_URI or local guest")
    areas = top.add_subparsers(dest="area", required=True)
    _sms_parser(areas)
    dlq = areas.add_parser(
        "dlq", help="dead-letter queues").add_subparsers(dest="command", required=True)
    dlq.add_parser("list", help="every dead-letter queue and how many messages it holds")
    show = dlq.add_parser("show", help="the messages of one queue, left where they are")
    show.add_argument("queue", help="the dead-letter queue, or the queue whose dead letters to show")
    show.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    replay = dlq.add_parser("replay", help="send messages back to the queue they failed in")
    replay.add_argument("queue")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every message")
    which.add_argument("--event-id", action="append", help="the message of this event (repeatable)")
    which.add_argument("--first", type=int, help="the first N messages")
    purge = dlq.add_parser("purge", help="delete every message of a dead-letter queue")
    purge.add_argument("queue")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delay = areas.add_parser(
        "delay-queues", help="the delay queues hocvu.retry.<N>s").add_subparsers(
        dest="command", required=True)
    migrate = delay.add_parser("migrate", help=(
        "replace each delay queue declared with other arguments than this release declares "
        "(on quorum queues: before at-least-once dead-lettering), while the services run"))
    migrate.add_argument("--queue-type", default=os.environ.get("QUEUE_TYPE", "classic"),
                         choices=("classic", "quorum"),
                         help="as the services' QUEUE_TYPE (default: $QUEUE_TYPE or classic)")
    migrate.add_argument("--retry-delays", default=os.environ.get("RETRY_DELAYS_SECONDS", ""),
                         help="as the services' RETRY_DELAYS_SECONDS (default: that variable, "
                              "else the services' default)")
    return top


def _migrate_delay_queues(args) -> int:
    config = {"QUEUE_TYPE": args.queue_type, "RETRY_DELAYS_SECONDS": args.retry_delays}
    try:
        migrations = DelayQueues(args.amqp_uri, config).migrate()
    except pika.exceptions.AMQPError as exc:
        print(f"cannot migrate the delay queues at {args.amqp_uri}: {exc!r}", file=sys.stderr)
        return USAGE_ERROR
    print(f"{sum(m.replaced for m in migrations)} of {len(migrations)} delay queues replaced")
    return 0


def _sms_parser(areas) -> None:
    area = areas.add_parser("sms", help="SMS stuck or failed, with their reasons")
    area.add_argument("--mongo-uri", default=os.environ.get(
        "MONGO_URI", "mongodb://127.0.0.1:27017/?retryWrites=false"),
        help="notifications' store (default: $MONGO_URI or local)")
    area.add_argument("--database", default=os.environ.get(
        "NOTIFICATIONS_DATABASE", "hocvu_notifications"),
        help="notifications' database (default: $NOTIFICATIONS_DATABASE or hocvu_notifications)")
    commands = area.add_subparsers(dest="command", required=True)
    stuck = commands.add_parser("stuck", help="waiting for a contact, a send or a report too long")
    stuck.add_argument("--older-than-minutes", type=int, default=15,
                       help="how long counts as stuck (default 15)")
    failed = commands.add_parser("failed", help="failed, undelivered, suppressed or unknown")
    for command in (stuck, failed):
        command.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
        command.add_argument("--json", action="store_true", help="print JSON instead of text")


COMMANDS = {"list": _list, "show": _show, "replay": _replay, "purge": _purge}


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.area == "delay-queues":
        return _migrate_delay_queues(args)
    if args.area == "sms":
        try:
            return sms.run(args)
        except pymongo.errors.PyMongoError as exc:
            print(f"cannot read notifications' store at {args.mongo_uri}: {exc!r}",
                  file=sys.stderr)
            return USAGE_ERROR
    try:
        dead = DeadLetters(args.amqp_uri)
    except pika.exceptions.AMQPError as exc:
        print(f"cannot reach RabbitMQ at {args.amqp_uri}: {exc!r}", file=sys.stderr)
        return USAGE_ERROR
    try:
        return COMMANDS[args.command](dead, args)
    except NoSuchQueue as exc:
        print(f"no such queue: {exc} (see `dlq list`)", file=sys.stderr)
        return USAGE_ERROR
    finally:
        dead.close()


if __name__ == "__main__":
    sys.exit(main())
