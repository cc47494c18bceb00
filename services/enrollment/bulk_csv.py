"""Reading a facilitator's list of learners: a CSV file as people really save it.

What Excel writes, and what is accepted:
- "CSV UTF-8 (Comma delimited)": UTF-8 with a byte-order mark; plain UTF-8 without one;
- "CSV (Comma delimited)" on a Vietnamese Windows: Windows-1258, which spells some
  accented letters as a base letter and a combining tone mark (normalised to NFC here);
  the list separator of the Vietnamese regional settings is ";", of English ones ",";
- "Unicode Text": UTF-16 (little-endian, with a byte-order mark), tab-separated.
The separator is read from the header line (tab, ";" or ","), quoting is the csv module's.

Headers are matched without regard to case, accents, spaces or underscores, in Vietnamese
or English ("Họ và tên" / "full_name"), in any order; other columns are ignored. Every cell
is NFC with single spaces. A fully empty line (Excel's trailing ";;;;") is skipped; rows
are numbered as Excel shows them (the header is row 1).

Excel also reads a column of digits as a number and drops its leading zero: every CCCD
starts with 0 and so does a mobile number written the Vietnamese way. An 11-digit national
ID and a 9-digit mobile number are given their zero back; a CCCD Excel turned into
"3.8195E+11" has lost its digits and is reported as invalid.

Pure functions, no I/O.
"""
import codecs
import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field

ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "windows-1258")
FIELDS = ("full_name", "national_id", "phone", "birth_year", "group", "commune_code",
          "province_code", "enrollment_id")
REQUIRED_COLUMNS = ("full_name", "national_id", "phone", "birth_year", "group")

# header spellings, compared after _fold (no accents, lower case, single spaces)
HEADER_ALIASES = {
    "full_name": ("ho va ten", "ho ten", "ten", "ten hoc vien", "full name", "name"),
    "national_id": ("so cccd", "cccd", "so can cuoc", "can cuoc cong dan", "so dinh danh",
                    "so dinh danh ca nhan", "national id", "cccd number", "id number"),
    "phone": ("so dien thoai", "dien thoai", "sdt", "so dt", "phone", "phone number",
              "mobile"),
    "birth_year": ("nam sinh", "birth year", "year of birth"),
    "group": ("doi tuong", "nhom", "nhom doi tuong", "group", "learner group"),
    "commune_code": ("ma xa", "ma xa phuong", "ma phuong xa", "ma don vi hanh chinh",
                     "commune code", "commune"),
    "province_code": ("ma tinh", "ma tinh thanh pho", "province code", "province"),
    # a class's attendance list may name enrollments instead of national IDs (lookup.py)
    "enrollment_id": ("ma ghi danh", "enrollment id", "enrollment"),
}
_COLUMN_OF = {alias: name for name, aliases in HEADER_ALIASES.items() for alias in aliases}
_COLUMN_OF.update({name.replace("_", " "): name for name in FIELDS})

# the learner groups as a Vietnamese list names them ("Đối tượng"), folded like headers
GROUP_ALIASES = {
    "official": ("can bo", "cong chuc", "vien chuc", "can bo cong chuc vien chuc",
                 "can bo, cong chuc, vien chuc", "cbccvc"),
    "student": ("hoc sinh", "sinh vien", "hoc sinh, sinh vien", "hoc sinh sinh vien",
                "hssv"),
    "worker": ("cong nhan", "nguoi lao dong", "cong nhan, nguoi lao dong",
               "cong nhan lao dong", "lao dong"),
    "citizen": ("nguoi dan", "cong dan", "nguoi dan, cong dan"),
}
_GROUP_OF = {alias: group for group, aliases in GROUP_ALIASES.items() for alias in aliases}

FIELD_NAMES_VI = {
    "full_name": "Họ và tên", "national_id": "Số CCCD", "phone": "Số điện thoại",
    "birth_year": "Năm sinh", "group": "Đối tượng", "commune_code": "Mã xã",
    "province_code": "Mã tỉnh", "course_id": "Khoá học", "enrollment_id": "Mã ghi danh",
    "row": "Dòng", "learner": "Học viên", "_schema": "Dòng", "_row": "Dòng",
}


class CsvProblem(ValueError):
    """The file as a whole cannot be read: said in English and in Vietnamese."""

    def __init__(self, message_en: str, message_vi: str, fields: dict | None = None):
        super().__init__(message_en)
        self.message_en = message_en
        self.message_vi = message_vi
        self.fields = fields or {}


class TooManyRows(CsvProblem):
    pass


@dataclass
class ParsedFile:
    encoding: str
    delimiter: str
    columns: dict[str, str]                      # our field -> the header as written
    rows: list[tuple[int, dict]] = field(default_factory=list)  # (row number, cells)


def fold(text: str) -> str:
    """Lower case, no accents (đ as d), punctuation other than commas as spaces, single
    spaces: how headers and group names are compared."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return " ".join(re.sub(r"[_/()\-.:*]", " ", bare).split())


def clean(cell: str) -> str:
    return " ".join(unicodedata.normalize("NFC", cell).split())


def decode(data: bytes) -> tuple[str, str]:
    """The text of an upload and the encoding it was read as (one of ENCODINGS)."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8", errors="strict"), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass  # reported below with the other unreadable files
    else:
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            try:
                return data.decode("cp1258"), "windows-1258"
            except UnicodeDecodeError:
                pass
    raise CsvProblem("the file is not text in UTF-8, UTF-16 or Windows-1258: save it from "
                     "Excel as \"CSV UTF-8\"",
                     "tệp không phải văn bản UTF-8, UTF-16 hay Windows-1258: hãy lưu từ Excel "
                     "dạng \"CSV UTF-8\"")


def _delimiter(header_line: str) -> str:
    counts = {sep: header_line.count(sep) for sep in ("\t", ";", ",")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def parse(data: bytes, max_rows: int, required: tuple[str, ...] = REQUIRED_COLUMNS) -> ParsedFile:
    """Decode, find the columns, and read every non-empty row (at most `max_rows`)."""
    text, encoding = decode(data)
    text = unicodedata.normalize("NFC", text)
    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    delimiter = _delimiter(first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = None
    for row in reader:
        if any(cell.strip() for cell in row):
            header = row
            break
    if header is None:
        raise CsvProblem("the file is empty", "tệp trống", {"_file": ["no header line"]})
    positions, columns = {}, {}
    for position, name in enumerate(header):
        ours = _COLUMN_OF.get(fold(name))
        if ours and ours not in positions:
            positions[ours] = position
            columns[ours] = clean(name)
    missing = [name for name in required if name not in positions]
    if missing:
        raise CsvProblem(
            "the header line lacks the columns " + ", ".join(missing),
            "dòng tiêu đề thiếu cột " + ", ".join(FIELD_NAMES_VI[name] for name in missing),
            {"_file": [f"missing column {name} ({FIELD_NAMES_VI[name]})" for name in missing]})
    parsed = ParsedFile(encoding=encoding, delimiter=delimiter, columns=columns)
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(parsed.rows) >= max_rows:
                raise TooManyRows(
                    f"the file has more than {max_rows:,} learners; split it",
                    f"tệp có hơn {max_rows:,} học viên; hãy chia nhỏ tệp",
                    {"_file": [f"at most {max_rows} rows"]})
            cells = {name: clean(row[position]) if position < len(row) else ""
                     for name, position in positions.items()}
            parsed.rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise CsvProblem(f"line {reader.line_num} cannot be read as CSV: {exc}",
                         f"dòng {reader.line_num} không đọc được dạng CSV: {exc}") from None
    return parsed


def _restore_leading_zero(value: str, length: int) -> str:
    """Excel read a column of digits as a number and dropped its first zero."""
    return "0" + value if value.isdigit() and len(value) == length - 1 else value


def learner_fields(cells: dict, province_code: str | None, commune_code: str | None) -> dict:
    """One row as the `learner` of POST /enrollments (validated by the same schema): the
    cells as written, but for what Excel does to digits and the group's Vietnamese name;
    the province and commune from the upload when the file has no such column."""
    learner = {}
    for name in ("full_name", "national_id", "phone", "birth_year", "group", "commune_code",
                 "province_code"):
        value = cells.get(name, "")
        if value != "":
            learner[name] = value
    if "national_id" in learner:
        learner["national_id"] = _restore_leading_zero(
            learner["national_id"].replace(" ", ""), 12)
    if "phone" in learner:
        learner["phone"] = _restore_leading_zero(learner["phone"], 10)
    if re.fullmatch(r"[0-9]{4}(\.0+)?", learner.get("birth_year", "")):
        learner["birth_year"] = int(float(learner["birth_year"]))
    if "group" in learner:
        learner["group"] = _GROUP_OF.get(fold(learner["group"]), learner["group"].casefold())
    if "commune_code" in learner:
        learner["commune_code"] = _restore_leading_zero(learner["commune_code"], 5)
    elif commune_code:
        learner["commune_code"] = commune_code
    if "province_code" in learner:
        learner["province_code"] = _restore_leading_zero(learner["province_code"], 2)
    elif province_code:
        learner["province_code"] = province_code
    return learner


# --- messages in Vietnamese -----------------------------------------------------------

_MESSAGES_VI = [
    (r"Missing data for required field\.", "thiếu (bắt buộc)"),
    (r"Not a valid integer\.", "không phải một năm (số)"),
    (r"Not a valid string\.", "không hợp lệ"),
    (r"must be 1900 or later", "phải từ 1900 trở đi"),
    (r"must be between 1900 and (\d+)", r"phải từ 1900 đến \1"),
    (r"must be 2 to 100 characters", "phải dài 2 đến 100 ký tự"),
    (r"may contain only letters, spaces, dots, apostrophes and hyphens",
     "chỉ được có chữ cái, dấu cách, dấu chấm, dấu nháy và gạch nối"),
    (r"must be exactly 12 digits", "phải có đúng 12 chữ số"),
    (r"12 digits starting with a province code", "phải có 12 chữ số, bắt đầu bằng mã tỉnh"),
    (r"starts with (\d+), which is no province code", r"bắt đầu bằng \1, không phải mã tỉnh"),
    (r"encodes birth year (\d+), not (\d+)", r"ứng với năm sinh \1, không phải \2"),
    (r"digits, with an optional \+ and spaces, dots, dashes or brackets",
     "chỉ gồm chữ số (có thể có +, dấu cách, chấm, gạch, ngoặc)"),
    (r"not a phone number", "không phải số điện thoại"),
    (r"must be a Vietnamese number \(\+84\)", "phải là số điện thoại Việt Nam (+84)"),
    (r"not a valid Vietnamese mobile number.*",
     "không phải số di động Việt Nam hợp lệ (10 chữ số, bắt đầu 03, 05, 07, 08 hoặc 09)"),
    (r"Must be one of: .*", "không thuộc các giá trị cho phép"),
    (r"must be the 2-digit code of one of the 34 provinces", "phải là mã 2 chữ số của một "
                                                              "trong 34 tỉnh, thành phố"),
    (r"must be a 5-digit commune or ward code", "phải là mã xã, phường gồm 5 chữ số"),
    (r"outside your communes", "ngoài các xã bạn phụ trách"),
    (r"course (\S+) is for group '(\w+)', the learner is in group '(\w+)'",
     r"khoá học \1 dành cho đối tượng '\2', học viên thuộc đối tượng '\3'"),
    (r"already enrolled in this course", "đã ghi danh khoá học này"),
    (r"differs from the registered person",
     "khác thông tin người đã đăng ký; chỉ chính họ hoặc cán bộ xã của họ được sửa"),
    (r"could not be processed after (\d+) attempts; upload this row again",
     r"không xử lý được sau \1 lần thử; hãy tải lại dòng này"),
    (r"unknown enrollment, or not in your communes",
     "không có ghi danh này, hoặc ngoài các xã bạn phụ trách"),
    (r"no enrollment in this course.*", "chưa ghi danh khoá học này, hoặc ngoài các xã bạn "
                                        "phụ trách"),
]


def message_vi(field_name: str, message_en: str) -> str:
    """The Vietnamese of a validation message, prefixed with the column's Vietnamese name."""
    label = FIELD_NAMES_VI.get(field_name, field_name)
    for pattern, vietnamese in _MESSAGES_VI:
        if re.fullmatch(pattern, message_en):
            return f"{label}: {re.sub(pattern, vietnamese, message_en)}"
    return f"{label}: không hợp lệ"


def report_lines(problems) -> str:
    """(row, outcome, field, message) tuples -> a CSV Excel opens with its accents (UTF-8
    with a byte-order mark; every cell quoted where needed by the csv module)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["row", "outcome", "field", "message_vi", "message_en"])
    for row, outcome, field_name, message in problems:
        writer.writerow([row, outcome, field_name, message_vi(field_name, message), message])
    return "\ufeff" + out.getvalue()
