"""Who covers which commune, who owns which record, and what a list query lets through."""
import pytest

from hocvu import auth
from hocvu.auth import Principal

FACILITATOR = Principal("staff:f", auth.FACILITATOR, "38", frozenset({"14845", "14846"}))
COMMUNE_ADMIN = Principal("staff:c", auth.COMMUNE_ADMIN, "38", frozenset({"14845"}))
PROVINCE_ADMIN = Principal("staff:p", auth.PROVINCE_ADMIN, "38")
LEARNER = Principal("learner:abc", auth.LEARNER, phone="+84912345678")


@pytest.mark.parametrize("who, province, commune, sees", [
    (FACILITATOR, "38", "14845", True), (FACILITATOR, "38", "14846", True),
    (FACILITATOR, "38", "16000", False), (FACILITATOR, "01", "14845", False),
    (COMMUNE_ADMIN, "38", "14846", False), (PROVINCE_ADMIN, "38", "16000", True),
    (PROVINCE_ADMIN, "01", "00004", False), (LEARNER, "38", "14845", False)])
def test_staff_cover_their_communes_and_province_admins_their_province(who, province, commune,
                                                                      sees):
    assert who.covers(province, commune) is sees
    assert who.may_see(province, commune, "learner:abc") is (sees or who is LEARNER)


def test_a_learner_sees_only_what_carries_their_subject():
    assert LEARNER.may_see("01", "00004", "learner:abc")
    assert not LEARNER.may_see("38", "14845", "learner:other")
    assert not LEARNER.may_see("38", "14845", None)
    assert not FACILITATOR.owns("staff:f")


def test_list_filters_match_the_scope():
    assert LEARNER.scope_filter("p", "c", "s") == {"s": "learner:abc"}
    assert PROVINCE_ADMIN.scope_filter("p", "c", "s") == {"p": "38"}
    assert FACILITATOR.scope_filter("p", "c", "s") == {"c": {"$in": ["14845", "14846"]}, "p": "38"}


def test_rules_check_roles_and_refuse_unknown_ones():
    rule = auth.roles(auth.FACILITATOR, auth.PROVINCE_ADMIN)
    auth.authorize(rule, FACILITATOR)
    with pytest.raises(auth.Forbidden):
        auth.authorize(rule, LEARNER)
    with pytest.raises(auth.Unauthenticated):
        auth.authorize(rule, None)
    auth.authorize(auth.PUBLIC, None)
    with pytest.raises(ValueError):
        auth.roles("superuser")


def test_bearer_tokens_are_read_from_the_header():
    assert auth.bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert auth.bearer_token("bearer   abc ") == "abc"
    for bad in (None, "", "Basic dXNlcjpwYXNz", "Bearer ", "abc.def.ghi"):
        with pytest.raises(auth.Unauthenticated):
            auth.bearer_token(bad)


def test_the_learner_subject_is_a_keyed_hash_of_the_number():
    one = auth.learner_subject("+84912345678", b"k" * 32)
    assert one.startswith("learner:") and len(one) == 8 + 32 and "912345678" not in one
    assert one == auth.learner_subject("+84912345678", b"k" * 32)
    assert one != auth.learner_subject("+84912345678", b"j" * 32)
