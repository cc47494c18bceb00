"""The SMS a learner receives, written in Vietnamese; sms.prepare() unaccents them."""
ENROLLMENT_CONFIRMED = "enrollment_confirmed"
CERTIFICATE_ISSUED = "certificate_issued"
SIGN_IN_CODE = "sign_in_code"  # transactional; its {code} is never stored (sign_in_codes.py)

TEMPLATES = {
    ENROLLMENT_CONFIRMED: (
        "Chào {full_name}, bạn đã đăng ký khóa học \"{course_title}\" "
        "của chương trình Bình dân học vụ số. Chúc bạn học tốt!"),
    CERTIFICATE_ISSUED: (
        "Chúc mừng {full_name} đã hoàn thành khóa học \"{course_title}\". "
        "Mã chứng chỉ: {verification_code}. Tra cứu: {verify_url}"),
    SIGN_IN_CODE: (
        "Mã đăng nhập Bình dân học vụ số: {code}. Mã có hiệu lực 5 phút. "
        "Không chia sẻ mã này với bất kỳ ai."),
}


def render(template: str, **values) -> str:
    return TEMPLATES[template].format(**values)
