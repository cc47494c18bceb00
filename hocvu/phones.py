"""Vietnamese mobile numbers: one normal form (E.164) for every service that takes one.

Pure functions; enrollment takes a learner's number with these, identity a sign-in number.
"""
import re

import phonenumbers
from phonenumbers import PhoneNumberType

_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


# what a phone field may look like at all (the number plan itself is normalize_phone's);
# stated in the OpenAPI documents of every route that takes a number
PHONE_PATTERN = r"^[+]?[0-9 .()-]{9,20}$"


class InvalidPhone(ValueError):
    pass


def normalize_phone(raw: str) -> str:
    """A Vietnamese mobile number in any usual form -> E.164 (+84xxxxxxxxx)."""
    compact = re.sub(r"[\s.()-]", "", raw or "")
    if re.fullmatch(r"84\d{9}", compact):
        compact = "+" + compact
    try:
        number = phonenumbers.parse(compact, "VN")
    except phonenumbers.NumberParseException:
        raise InvalidPhone("not a phone number") from None
    if number.country_code != 84:
        raise InvalidPhone("must be a Vietnamese number (+84)")
    if not phonenumbers.is_valid_number(number) or \
            phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise InvalidPhone("not a valid Vietnamese mobile number "
                           "(10 digits starting 03, 05, 07, 08 or 09)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
