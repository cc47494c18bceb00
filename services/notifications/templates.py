"""The SMS a learner receives, written in Vietnamese; sms.prepare() unaccents them."""
ENROLLMENT_CONFIRMED = "enrollment_confirmed"
CERTIFICATE_ISSUED = "certificate_issued"

TEMPLATES = {
    ENROLLMENT_CONFIRMED: (
        "Chào {full_name}, bạn đã đăng ký khóa học \"{course_title}\" "
        "của chương trình Bình dân học vụ số. Chúc bạn học tốt!"),
    CERTIFICATE_ISSUED: (
        "Chúc mừng {full_name} đã hoàn thành khóa học \"{course_title}\". "
        "Mã chứng chỉ: {verification_code}. Tra cứu: {verify_url}"),
}


def render(template: str, **values) -> str:
    return TEMPLATES[template].format(**values)
