"""`python -m services.reporting.rebuild`: recompute every figure from the retained facts.

Reporting's figures are derived; its `events` collection is the stream they come from.
This forgets every derived document and replays the stream (in the order it was received;
the result does not depend on it). Run it with the service stopped, against the service's
own store: MONGO_URI and MONGO_DATABASE as the service reads them (default: the dev stack's).
If the `events` collection itself were lost, ask the owning services to publish their
events again (docs/reporting.md, "Rebuilding") and run this after they are consumed.
"""
import argparse
import os
import time

from pymongo import MongoClient

from hocvu.settings import load
from services.reporting import repository
from services.reporting.settings import ReportingSettings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.reporting.rebuild")
    parser.add_argument("--mongo-uri", default=os.environ.get(
        "MONGO_URI", "mongodb://127.0.0.1:27017/?retryWrites=false"))
    parser.add_argument("--database", default=os.environ.get("MONGO_DATABASE", "hocvu_reporting"))
    parser.add_argument("--active-days", type=int, default=load(
        ReportingSettings, os.environ, "reporting rebuild").active_days)
    args = parser.parse_args()
    client = MongoClient(args.mongo_uri, tz_aware=True)
    started = time.monotonic()
    replayed = repository.rebuild(client[args.database], args.active_days)
    print(f"replayed {replayed} events into {args.database} in "
          f"{time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
