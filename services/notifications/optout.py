"""Opt-out of reminder-like SMS, per phone number, by keyword reply or by API.

A learner replying STOP (or the province's Vietnamese keyword, TUCHOI by default) stops
reminders and campaign notices to that number; START (DONGY) brings them back.
Transactional messages (enrollment, certificate, sign-in code) are not affected. The
latest change wins; each change keeps how it came (`sms` or `api`) and when.
"""
import re
from datetime import datetime

from anyascii import anyascii

OPT_OUT, OPT_IN = "opt_out", "opt_in"
MAX_KEYWORD_TEXT = 160


def keywords(opt_out_words: str, opt_in_words: str) -> dict[str, str]:
    """Normalised keyword -> OPT_OUT or OPT_IN, from the comma-separated lists of
    SMS_OPTOUT_KEYWORDS and SMS_OPTIN_KEYWORDS."""
    table = {}
    for words, action in ((opt_out_words, OPT_OUT), (opt_in_words, OPT_IN)):
        for word in words.split(","):
            if normalise(word):
                table[normalise(word)] = action
    return table


def normalise(text: str) -> str:
    """'  Từ chối! ' -> 'TU CHOI': no accents, no punctuation, single spaces, upper case."""
    plain = anyascii(text[:MAX_KEYWORD_TEXT]).upper()
    return " ".join(re.sub(r"[^A-Z0-9 ]+", " ", plain).split())


def action_for(text: str, table: dict[str, str]) -> str | None:
    """The action a reply asks for: it is a keyword, or starts with one and then a space."""
    words = normalise(text)
    for keyword in sorted(table, key=len, reverse=True):
        if words == keyword or words.startswith(keyword + " "):
            return table[keyword]
    return None


def set_opt_out(optouts, phone: str, opted_out: bool, via: str, now: datetime) -> None:
    optouts.update_one({"_id": phone}, {"$set": {
        "opted_out": opted_out, "changed_at": now, "via": via}}, upsert=True)


def preference(optouts, phone: str) -> dict:
    """The number's latest change (opted_out, changed_at, via); empty if it never changed."""
    return optouts.find_one({"_id": phone}) or {}


def opted_out_among(optouts, phones: list[str | None]) -> set[str]:
    """The numbers of `phones` that opted out, in one read."""
    wanted = list({phone for phone in phones if phone})
    if not wanted:
        return set()
    return {found["_id"] for found in optouts.find({"_id": {"$in": wanted}, "opted_out": True},
                                                   projection={"_id": 1})}
