"""Page requests: the query a list takes is exactly what its OpenAPI document states."""
import re
from datetime import datetime, timezone

import pytest
from marshmallow import ValidationError

from hocvu.pagination import CURSOR_PATTERN, PageQuery, _epoch_millis, page_request

query = PageQuery()


def test_defaults():
    assert page_request(query.load({})) == (50, None)


@pytest.mark.parametrize("limit", ["0", "101", "", "x", " 5", "+5", "1_0", "5.0", "²", "٥", "-1"])
def test_a_limit_that_is_not_an_ascii_integer_from_1_to_100_is_refused(limit):
    with pytest.raises(ValidationError) as refused:
        query.load({"limit": limit})
    assert "limit" in refused.value.messages


@pytest.mark.parametrize("cursor", ["nope", "", "12~", "~abc", "012~abc", "12~ABC", "1.5~abc"])
def test_a_cursor_not_of_the_stated_form_is_refused(cursor):
    with pytest.raises(ValidationError):
        query.load({"cursor": cursor})


def test_a_cursor_names_the_position_after_the_last_item_of_a_page():
    moment = datetime(2026, 11, 25, 2, 12, 27, 163000, tzinfo=timezone.utc)
    cursor = f"{_epoch_millis(moment)}~0b8e1c2d-aaaa-4bbb-8ccc-123456789abc"
    assert re.fullmatch(CURSOR_PATTERN, cursor)
    assert page_request(query.load({"limit": "2", "cursor": cursor})) == (
        2, (moment, "0b8e1c2d-aaaa-4bbb-8ccc-123456789abc"))


def test_a_cursor_past_the_last_date_there_can_be_is_an_empty_page_not_an_error():
    limit, (moment, _) = page_request(query.load({"cursor": "999999999999999~ab"}))
    assert moment.year == 9999
