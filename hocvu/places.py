"""Vietnam's administrative codes, shared by the services that place a person."""

# Province codes of the 34 provinces since 1 July 2025 (Decision 19/2025/QD-TTg): two
# digits. Communes and wards have five-digit codes; districts no longer exist.
PROVINCE_CODES = frozenset({
    "01", "04", "08", "11", "12", "14", "15", "19", "20", "22", "24", "25", "31", "33",
    "37", "38", "40", "42", "44", "46", "48", "51", "52", "56", "66", "68", "75", "79",
    "80", "82", "86", "91", "92", "96"})


def is_commune_code(code: str) -> bool:
    return isinstance(code, str) and len(code) == 5 and code.isascii() and code.isdigit()
