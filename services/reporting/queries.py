"""The read path: figures for the caller's scope, each read bounded by an index range
(a province or a list of communes, and a range of days)."""
import csv
import io
from datetime import date, timedelta

from hocvu import auth
from hocvu.reference import communes as commune_register
from services.reporting import domain

TREND_DAYS = 30


def scope(principal: auth.Principal, args: dict) -> dict | None:
    """A store filter on province_code/commune_code for what the caller asked within what
    they may see; None when nothing can match (another province, a commune not theirs)."""
    query = principal.scope_filter("province_code", "commune_code", "learner_subject")
    asked_province = args.get("province")
    if asked_province:
        if principal.province and asked_province != principal.province:
            return None
        query["province_code"] = asked_province
    commune = args.get("commune")
    if commune:
        if principal.role != auth.PROVINCE_ADMIN and commune not in principal.communes:
            return None
        query["commune_code"] = commune
    return query


def _range(args: dict, default_days: int | None) -> tuple[str | None, str]:
    end = args.get("date_to") or date.fromisoformat(domain.today())
    start = args.get("date_from")
    if start is None and default_days:
        # (the first days of year 1 have no 30 days before them)
        start = date.fromordinal(max(1, end.toordinal() - default_days + 1))
    return (start.isoformat() if start else None), end.isoformat()


def _summed(docs, args, metrics) -> dict:
    """{commune: figures} over docs' `by`, keeping the buckets the filters ask for."""
    found: dict = {}
    for doc in docs:
        total = found.setdefault(doc["commune_code"], domain.empty())
        for key, counts in doc["by"].items():
            if domain.matches(key, args.get("group"), args.get("age_band")):
                domain.add(total, counts, metrics)
    return found


def communes(db, principal, args: dict, default_target: float) -> dict:
    start, end = _range(args, None)
    query = scope(principal, args)
    result = {"date_from": start, "date_to": end, "items": [], "totals": domain.empty()}
    if query is None:
        return result
    if start is None:  # the whole campaign: one document per commune
        counted = _summed(db.commune_totals.find(query), args, domain.COUNTED)
    else:
        counted = _summed(db.commune_days.find({**query, "day": {"$gte": start, "$lte": end}}),
                          args, domain.COUNTED)
    active = _summed(db.commune_days.find({**query, "day": end}), args, ("active",))
    targets = {t["_id"]: t for t in db.targets.find(query)}
    register = commune_register()
    # every commune in scope has a row, those with nobody enrolled yet too: they are the
    # ones a province must look at first
    for code in sorted(set(counted) | set(active) | _communes_in(query, register)):
        figures = {**counted.get(code, domain.empty()),
                   "active": active.get(code, {}).get("active", 0)}
        target = targets.get(code) or {"target_rate": default_target}
        known = register.get(code)
        result["items"].append({
            **domain.with_rate(figures, target), "commune_code": code,
            "province_code": known.province_code if known else None,
            "commune_name": known.name if known else None})
        domain.add(result["totals"], figures)
    return result


def _communes_in(query: dict, register) -> set[str]:
    communes = query.get("commune_code")
    if isinstance(communes, str):
        wanted = {communes}
    elif communes:
        wanted = set(communes["$in"])
    else:
        wanted = {c.code for c in register.values()
                  if c.province_code == query.get("province_code")}
    province = query.get("province_code")
    return {code for code in wanted if code in register
            and (province is None or register[code].province_code == province)}


def days(db, principal, args: dict) -> dict:
    start, end = _range(args, TREND_DAYS)
    query = scope(principal, args)
    result = {"date_from": start, "date_to": end, "items": []}
    if query is None:
        return result
    in_range = {"day": {"$gte": start, "$lte": end}}
    if principal.role == auth.PROVINCE_ADMIN and "commune_code" not in query:
        # the whole province: one document per day
        docs = db.province_days.find({**query, **in_range})
    else:
        docs = db.commune_days.find({**query, **in_range})
    by_day: dict = {}
    for doc in docs:
        total = by_day.setdefault(doc["day"], domain.empty())
        for key, counts in doc["by"].items():
            if domain.matches(key, args.get("group"), args.get("age_band")):
                domain.add(total, counts)
    # every day of the range, those without figures too: a trend with gaps left out would
    # draw a steady line over days when nothing happened
    first = date.fromisoformat(start)
    span = (date.fromisoformat(end) - first).days + 1
    every_day = [(first + timedelta(days=k)).isoformat() for k in range(span)]
    result["items"] = [{"day": day, **by_day.get(day, domain.empty())} for day in every_day]
    return result


EXPORT_COLUMNS = ("day", "province_code", "commune_code", "commune_name", "group", "age_band",
                  *domain.METRICS)


def export_csv(db, principal, args: dict) -> str:
    """One row per commune, day, group and age band in the range (default: the last 30
    days), UTF-8 with a byte-order mark so spreadsheet programs read the Vietnamese names."""
    start, end = _range(args, TREND_DAYS)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    query = scope(principal, args)
    if query is not None:
        register = commune_register()
        docs = db.commune_days.find({**query, "day": {"$gte": start, "$lte": end}})
        rows = []
        for doc in docs:
            known = register.get(doc["commune_code"])
            for key, counts in doc["by"].items():
                if domain.matches(key, args.get("group"), args.get("age_band")):
                    group, band = key.split("|")
                    rows.append([doc["day"], doc.get("province_code") or "", doc["commune_code"],
                                 known.name if known else "", group, band,
                                 *(counts.get(m, 0) for m in domain.METRICS)])
        writer.writerows(sorted(rows))
    return "\ufeff" + out.getvalue()


def targets(db, principal: auth.Principal) -> list[dict]:
    """The targets set for the communes in the caller's scope."""
    query = principal.scope_filter("province_code", "commune_code", "learner_subject")
    return list(db.targets.find(query).sort("_id", 1))
