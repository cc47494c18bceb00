"""Reading facilitators' CSV files as Excel and people really save them (pure, no I/O)."""
import codecs
import unicodedata

import pytest

from services.enrollment import bulk_csv
from services.enrollment.schemas import EnrollmentIn

HEADER_VI = ["STT", "Họ và tên", "Số CCCD", "Số điện thoại", "Năm sinh", "Đối tượng", "Mã xã"]
ROWS = [["1", "Nguyễn Thị Hoa", "038195001234", "0912345678", "1995", "Người dân", "14845"],
        ["2", "Trần Văn Ễnh", "038180004321", "0987654321", "1980", "Cán bộ, công chức, viên chức",
         "14845"]]


def lines(rows, sep=","):
    def cell(value):
        return f'"{value}"' if sep in value else value
    return "\r\n".join(sep.join(cell(v) for v in row) for row in rows) + "\r\n"


def to_windows_1258(text: str) -> bytes:
    """As Windows writes Vietnamese in code page 1258: a precomposed letter where the code
    page has one, else a base letter (with its hat or horn) and a combining tone mark."""
    out = b""
    for ch in text:
        try:
            out += ch.encode("cp1258")
        except UnicodeEncodeError:
            base, *marks = unicodedata.normalize("NFD", ch)
            for mark in marks:   # the hat or horn the code page has a letter for
                composed = unicodedata.normalize("NFC", base + mark)
                if len(composed) == 1 and composed.encode("cp1258", errors="ignore"):
                    base, marks = composed, [m for m in marks if m != mark]
                    break
            out += base.encode("cp1258") + "".join(marks).encode("cp1258")
    return out


def check(parsed, encoding):
    assert parsed.encoding == encoding
    assert [row for row, _ in parsed.rows] == [2, 3]
    first = parsed.rows[0][1]
    assert first["full_name"] == "Nguyễn Thị Hoa" and first["commune_code"] == "14845"
    assert parsed.rows[1][1]["full_name"] == unicodedata.normalize("NFC", "Trần Văn Ễnh")
    learner = bulk_csv.learner_fields(parsed.rows[1][1], "38", None)
    assert learner["group"] == "official" and learner["birth_year"] == 1980
    assert parsed.columns["national_id"] in ("Số CCCD", "national_id")   # as written


def test_excel_csv_utf8_has_a_byte_order_mark():
    data = codecs.BOM_UTF8 + lines([HEADER_VI, *ROWS]).encode("utf-8")
    check(bulk_csv.parse(data, 10), "utf-8-sig")


def test_plain_utf8_with_english_headers_in_another_order():
    header = ["phone", "group", "national_id", "full_name", "birth_year", "commune_code"]
    order = [3, 5, 2, 1, 4, 6]
    rows = [header] + [[row[i] for i in order] for row in ROWS]
    check(bulk_csv.parse(lines(rows).encode("utf-8"), 10), "utf-8")


def test_excel_csv_on_vietnamese_windows_is_windows_1258_with_semicolons():
    data = to_windows_1258(lines([HEADER_VI, *ROWS], sep=";"))
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    parsed = bulk_csv.parse(data, 10)
    assert parsed.delimiter == ";"
    check(parsed, "windows-1258")


def test_excel_unicode_text_is_utf16_with_tabs():
    data = lines([HEADER_VI, *ROWS], sep="\t").encode("utf-16")   # little-endian, with BOM
    parsed = bulk_csv.parse(data, 10)
    assert parsed.delimiter == "\t"
    check(parsed, "utf-16")


def test_decomposed_accents_and_stray_spaces_are_normalised():
    name = unicodedata.normalize("NFD", "  Nguyễn   Thị  Hoa ")
    rows = [HEADER_VI, [ROWS[0][0], name, *ROWS[0][2:]], ROWS[1], [";"] * 0, ["", "", ""]]
    parsed = bulk_csv.parse(lines(rows).encode("utf-8"), 10)
    check(parsed, "utf-8")


def test_excel_dropped_leading_zeros_come_back():
    cells = {"national_id": "38195001234", "phone": "912345678", "birth_year": "1995",
             "group": "nguoi dan", "full_name": "Nguyễn Thị Hoa", "commune_code": "14845"}
    learner = bulk_csv.learner_fields(cells, "38", None)
    assert learner["national_id"] == "038195001234" and learner["phone"] == "0912345678"
    assert learner["group"] == "citizen" and learner["province_code"] == "38"
    loaded = EnrollmentIn().load({"course_id": "c", "learner": learner})
    assert loaded["learner"]["phone"] == "+84912345678"


def test_a_number_excel_wrote_in_scientific_notation_stays_invalid():
    learner = bulk_csv.learner_fields({"national_id": "3.81950E+11"}, "38", "14845")
    assert learner["national_id"] == "3.81950E+11"   # the schema reports it, nothing guesses


def test_missing_columns_are_named_in_both_languages():
    with pytest.raises(bulk_csv.CsvProblem) as problem:
        bulk_csv.parse(lines([["Họ và tên", "Số điện thoại"], ["A B", "0912345678"]]).encode(), 10)
    assert "national_id" in problem.value.message_en
    assert "Số CCCD" in problem.value.message_vi and "Năm sinh" in problem.value.message_vi


def test_not_text_at_all_is_refused():
    with pytest.raises(bulk_csv.CsvProblem):
        bulk_csv.parse(b"PK\x03\x04\x81\x8d\x8f\x90 an xlsx file", 10)


def test_an_empty_file_is_refused():
    with pytest.raises(bulk_csv.CsvProblem):
        bulk_csv.parse(codecs.BOM_UTF8 + b"\r\n\r\n", 10)


def test_a_hundred_thousand_rows_are_read_and_one_more_is_refused():
    row = ",".join(ROWS[0][1:]) + "\r\n"
    header = ",".join(HEADER_VI[1:]) + "\r\n"
    data = (header + row * 100_000).encode("utf-8")
    parsed = bulk_csv.parse(data, 100_000)
    assert len(parsed.rows) == 100_000 and parsed.rows[-1][0] == 100_001
    with pytest.raises(bulk_csv.TooManyRows):
        bulk_csv.parse(data + row.encode(), 100_000)


def test_messages_have_a_vietnamese_side():
    assert bulk_csv.message_vi("phone", "not a phone number") == \
        "Số điện thoại: không phải số điện thoại"
    assert bulk_csv.message_vi("national_id", "encodes birth year 1995, not 1996") == \
        "Số CCCD: ứng với năm sinh 1995, không phải 1996"
    assert bulk_csv.message_vi("group", "something new") == "Đối tượng: không hợp lệ"


def test_the_report_opens_in_excel_with_its_accents():
    text = bulk_csv.report_lines([(3, "invalid", "phone", "not a phone number")])
    assert text.startswith("\ufeffrow,outcome,field,message_vi,message_en\r\n")
    assert "3,invalid,phone,Số điện thoại: không phải số điện thoại,not a phone number" in text
