"""Province and commune codes against the official list of units since 1 July 2025."""
import pytest
from marshmallow import ValidationError

from hocvu import reference
from hocvu.places import PROVINCE_CODES
from services.enrollment.schemas import EnrollmentIn


def body(**learner):
    return {"course_id": "citizen-digital-basics", "learner": {
        "full_name": "Nguyễn Thị Hoa", "phone": "0912345678", "national_id": "038195001234",
        "birth_year": 1995, "group": "citizen", "province_code": "38", "commune_code": "14845",
        **learner}}


def test_the_shipped_list_has_34_provinces_and_3321_communes_and_wards():
    assert len(reference.communes()) == 3321
    assert set(reference.provinces()) == PROVINCE_CODES
    assert reference.provinces()["38"] == "Tỉnh Thanh Hoá"
    assert len(reference.communes_of("38")) == 166


def test_a_commune_of_the_province_is_accepted():
    assert EnrollmentIn().load(body(commune_code="14812"))["learner"]["commune_code"] == "14812"


def test_a_commune_of_another_province_is_refused_naming_both():
    with pytest.raises(ValidationError) as error:
        EnrollmentIn().load(body(province_code="38", commune_code="00004"))
    assert error.value.messages == {"learner": {"commune_code": [
        "00004 (Phường Ba Đình) is in Thành phố Hà Nội (01), not in province 38"]}}


def test_a_code_that_is_no_commune_is_refused():
    with pytest.raises(ValidationError) as error:
        EnrollmentIn().load(body(commune_code="14846"))
    assert error.value.messages == {"learner": {"commune_code": [
        "14846 is no commune or ward code since 1 July 2025"]}}


def test_a_malformed_province_or_commune_is_reported_once_by_its_own_field():
    with pytest.raises(ValidationError) as error:
        EnrollmentIn().load(body(province_code="99", commune_code="00004"))
    assert list(error.value.messages["learner"]) == ["province_code"]
