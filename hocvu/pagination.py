"""Lists answered a page at a time: `?limit=1..100` (default 50) and `?cursor=` from the
previous page; the answer is `{"items": [...], "next_cursor": "..." or null}`.

The cursor is the last item's sort key (a time and the `_id`), so a page is one range read
through an index, however deep into the list, and items added meanwhile do not shift pages.
"""
import base64
import binascii
import json
from datetime import datetime

from hocvu.clock import isoformat
from hocvu.http import ValidationFailed

DEFAULT_LIMIT, MAX_LIMIT = 50, 100
QUERY = {"limit": f"page size, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})",
         "cursor": "next_cursor of the previous page"}


def page_request(args) -> tuple[int, tuple | None]:
    """(limit, after) from the query string; 400 naming the parameter at fault."""
    raw_limit = args.get("limit", str(DEFAULT_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise ValidationFailed("invalid page size", {"limit": [f"an integer from 1 to {MAX_LIMIT}"]})
    cursor = args.get("cursor")
    if not cursor:
        return int(raw_limit), None
    try:
        moment, last_id = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        after = (datetime.fromisoformat(moment.replace("Z", "+00:00")), str(last_id))
    except (ValueError, TypeError, UnicodeEncodeError, binascii.Error):
        raise ValidationFailed("invalid cursor", {"cursor": ["use next_cursor from a previous page"]}) from None
    return int(raw_limit), after


def fetch_page(collection, query: dict, time_field: str, limit: int, after: tuple | None) -> dict:
    """One page of `query`, newest last, ordered by (`time_field`, _id)."""
    if after:
        moment, last_id = after
        query = {"$and": [query, {"$or": [{time_field: {"$gt": moment}},
                                          {time_field: moment, "_id": {"$gt": last_id}}]}]}
    docs = list(collection.find(query).sort([(time_field, 1), ("_id", 1)]).limit(limit + 1))
    more = len(docs) > limit
    docs = docs[:limit]
    next_cursor = None
    if more:
        last = docs[-1]
        next_cursor = base64.urlsafe_b64encode(json.dumps(
            [isoformat(last[time_field]), last["_id"]]).encode()).decode("ascii")
    return {"items": docs, "next_cursor": next_cursor}
