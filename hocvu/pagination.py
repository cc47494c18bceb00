"""Lists answered a page at a time: `?limit=1..100` (default 50) and `?cursor=` from the
previous page; the answer is `{"items": [...], "next_cursor": "..." or null}`.

The cursor is the last item's sort key, its time in epoch milliseconds and its id
(`1764037965120~0b8e…`), so a page is one range read through an index, however deep into the
list, and items added meanwhile do not shift pages. Any string of that form is a position in
the list, so the OpenAPI document can state the cursor's form exactly (`CURSOR_PATTERN`).
"""
import re
from datetime import datetime, timedelta, timezone

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

DEFAULT_LIMIT, MAX_LIMIT = 50, 100
# ids are uuid4 strings; milliseconds as BSON dates keep them
CURSOR_PATTERN = r"^(0|[1-9][0-9]{0,14})~[0-9a-f-]{1,36}$"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LATEST = datetime.max.replace(tzinfo=timezone.utc)
_MILLISECOND = timedelta(milliseconds=1)


class QueryInteger(fields.Integer):
    """An integer in a query string: ASCII digits only (int() would also take ' 5', '1_0'
    or other scripts' digits, which the document's `integer` does not allow)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not re.fullmatch(r"[0-9]{1,9}", value):
            raise ValidationError(f"an integer from 1 to {MAX_LIMIT}")
        return super()._deserialize(value, attr, data, **kwargs)


class PageQuery(Schema):
    """The query of every paged list; a list with filters subclasses it."""
    class Meta:
        unknown = EXCLUDE

    limit = QueryInteger(load_default=DEFAULT_LIMIT, validate=validate.Range(
        min=1, max=MAX_LIMIT, error=f"an integer from 1 to {MAX_LIMIT}"),
        metadata={"description": f"page size, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})"})
    cursor = fields.String(validate=validate.Regexp(
        CURSOR_PATTERN, error="use next_cursor from a previous page"),
        metadata={"description": "next_cursor of the previous page"})


def filter_field(description: str) -> fields.String:
    """An optional id filter of a list: the record's id, as the server stores ids."""
    return fields.String(validate=validate.Length(min=1, max=64),
                         metadata={"description": description})


def page_request(query: dict) -> tuple[int, tuple | None]:
    """(limit, after) from a query loaded with a PageQuery schema (hocvu.http.load_query)."""
    cursor = query.get("cursor")
    if not cursor:
        return query["limit"], None
    millis, last_id = cursor.split("~", 1)
    try:
        moment = _EPOCH + int(millis) * _MILLISECOND
    except OverflowError:
        moment = _LATEST  # past the last date there can be: an empty page
    return query["limit"], (moment, last_id)


def fetch_page(collection, query: dict | None, time_field: str, limit: int,
               after: tuple | None) -> dict:
    """One page of `query`, newest last, ordered by (`time_field`, _id); None matches nothing.

    Past the first page, the rest of the items of the last item's moment come first, then
    those of later moments: two range reads with flat filters, where one read would need a
    top-level $or, which the embedded store answers by reading the whole collection."""
    if query is None:
        return {"items": [], "next_cursor": None}
    order = [(time_field, 1), ("_id", 1)]
    if after:
        moment, last_id = after
        docs = list(collection.find({**query, time_field: moment, "_id": {"$gt": last_id}})
                    .sort(order).limit(limit + 1))
        if len(docs) <= limit:
            docs += collection.find({**query, time_field: {"$gt": moment}}).sort(order).limit(
                limit + 1 - len(docs))
    else:
        docs = list(collection.find(query).sort(order).limit(limit + 1))
    more = len(docs) > limit
    docs = docs[:limit]
    next_cursor = None
    if more:
        last = docs[-1]
        next_cursor = f"{_epoch_millis(last[time_field])}~{last['_id']}"
    return {"items": docs, "next_cursor": next_cursor}


def _epoch_millis(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // _MILLISECOND


def scoped_page(collection, caller, args: dict, filter_keys: tuple[str, ...],
                time_field: str) -> dict:
    """One page of the records `caller` (a hocvu.auth.Principal) may see, narrowed by the
    filters among `filter_keys` that `args` (a loaded query) gives. The records carry the
    scope fields every service keeps: province_code, commune_code, learner_subject."""
    limit, after = page_request(args)
    query = narrowed(caller.scope_filter("province_code", "commune_code", "learner_subject"),
                     {key: args[key] for key in filter_keys if key in args})
    return fetch_page(collection, query, time_field, limit, after)


def narrowed(scope: dict, filters: dict) -> dict | None:
    """The scope with the filters' equalities added, as one flat filter (a top-level $and
    would make the embedded store read the whole collection); None when a filter asks for
    what the scope excludes (a commune of someone else's)."""
    query = dict(scope)
    for key, value in filters.items():
        if key not in query:
            query[key] = value
        elif query[key] == value or (isinstance(query[key], dict)
                                     and value in query[key].get("$in", ())):
            query[key] = value
        else:
            return None
    return query
