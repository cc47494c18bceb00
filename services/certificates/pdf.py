"""A certificate as a one-page PDF, in Vietnamese, with a QR code of its verification URL.

fpdf2 lays it out with the shipped DejaVu Sans (fonts/README.md: every Vietnamese
diacritic), embedding only the glyphs used; segno draws the QR code (error correction M,
enough for a printed and folded page) as a PNG the page embeds. Nothing here reads the
store: the service passes the certificate and the URL.
"""
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import segno
from fpdf import FPDF

FONTS = Path(__file__).with_name("fonts")
# certificates are dated as the learner lives them: Vietnam's time (UTC+7, no DST)
VIETNAM = timezone(timedelta(hours=7))


def vietnamese_date(moment: datetime) -> str:
    local = moment.astimezone(VIETNAM)
    return f"ngày {local.day:02d} tháng {local.month:02d} năm {local.year}"


def qr_png(url: str) -> io.BytesIO:
    image = io.BytesIO()
    segno.make_qr(url, error="m").save(image, kind="png", scale=8, border=4)
    image.seek(0)
    return image


def render(certificate: dict, code_shown: str, verify_url: str) -> bytes:
    """The PDF of `certificate` (a stored document): its learner, course, date and serial,
    the verification code as the learner received it, and the URL as text and QR code."""
    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_title(f"Chứng nhận {certificate['serial']}")
    pdf.set_author("Bình dân học vụ số")
    pdf.set_creator("hocvu")
    pdf.add_font("DejaVu", "", FONTS / "DejaVuSans.ttf")
    pdf.add_font("DejaVu", "B", FONTS / "DejaVuSans-Bold.ttf")
    pdf.set_auto_page_break(False)
    pdf.add_page()
    width = pdf.w - 2 * pdf.l_margin

    def line(text: str, size: float, style: str = "", gap: float = 4) -> None:
        pdf.set_font("DejaVu", style, size)
        pdf.multi_cell(width, size * 0.5, text, align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(gap)

    pdf.set_draw_color(170, 30, 30)
    pdf.set_line_width(1.2)
    pdf.rect(8, 8, pdf.w - 16, pdf.h - 16)
    pdf.set_y(20)
    line("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", 12, "B", 1)
    line("Độc lập - Tự do - Hạnh phúc", 12, "", 8)
    line("GIẤY CHỨNG NHẬN", 26, "B", 2)
    line("Hoàn thành khóa học của phong trào \"Bình dân học vụ số\"", 13, "", 10)
    line("Chứng nhận", 13, "", 2)
    line(certificate["full_name"], 24, "B", 6)
    line("đã hoàn thành khóa học", 13, "", 2)
    line(certificate["course_title"], 17, "B", 8)
    line(f"Cấp {vietnamese_date(certificate['issued_at'])}", 12, "", 2)
    line(f"Số hiệu: {certificate['serial']}", 12, "", 2)
    line(f"Mã xác thực: {code_shown}", 12, "B", 2)

    size = 38
    pdf.image(qr_png(verify_url), x=pdf.w - 16 - size - 6, y=pdf.h - 16 - size - 6, w=size, h=size)
    pdf.set_font("DejaVu", "", 9)
    pdf.set_xy(16, pdf.h - 30)
    pdf.multi_cell(width - size - 12, 5, "Quét mã QR hoặc mở địa chỉ sau để kiểm tra chứng "
                   f"nhận:\n{verify_url}", align="L")
    return bytes(pdf.output())
