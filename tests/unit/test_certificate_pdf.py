"""The PDF certificate reads back in Vietnamese, and its QR code decodes to the URL."""
import io
import unicodedata
from datetime import datetime, timezone

import pypdf
import zxingcpp

from services.certificates import pdf

URL = "http://verify.example.test/api/certificates/verify/K7QM2XRT9BH4C3VA"
CERTIFICATE = {"serial": "HV-38-2026-000123", "full_name": "Nguyễn Thị Hoa Ưng Đỗ Quỳnh",
               "course_title": "Kỹ năng số cơ bản cho người dân",
               # 20:30 UTC is already the next day in Vietnam
               "issued_at": datetime(2026, 11, 25, 20, 30, tzinfo=timezone.utc)}


def read_back(data: bytes) -> tuple[str, list[str]]:
    page = pypdf.PdfReader(io.BytesIO(data)).pages[0]
    text = unicodedata.normalize("NFC", page.extract_text())
    codes = [found.text for image in page.images
             for found in zxingcpp.read_barcodes(image.image)]
    return text, codes


def test_the_certificate_names_learner_course_date_serial_and_code_in_vietnamese():
    data = pdf.render(CERTIFICATE, "K7QM-2XRT-9BH4-C3VA", URL)
    assert data.startswith(b"%PDF-")
    text, _ = read_back(data)
    for expected in ("GIẤY CHỨNG NHẬN", "Nguyễn Thị Hoa Ưng Đỗ Quỳnh",
                     "Kỹ năng số cơ bản cho người dân", "ngày 26 tháng 11 năm 2026",
                     "HV-38-2026-000123", "K7QM-2XRT-9BH4-C3VA", URL):
        assert expected in text, expected


def test_its_qr_code_decodes_to_the_verification_url():
    _, codes = read_back(pdf.render(CERTIFICATE, "K7QM-2XRT-9BH4-C3VA", URL))
    assert codes == [URL]
