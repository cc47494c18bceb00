"""The SMS a learner receives, written in Vietnamese; sms.compose() unaccents them.

Each template has a class (services.notifications.policy): transactional ones go at once,
at any hour; reminder-like ones only in the day window, within the daily cap, and never
to a number that opted out.
"""
from datetime import datetime, timedelta, timezone

VIETNAM = timezone(timedelta(hours=7))  # no daylight saving

ENROLLMENT_CONFIRMED = "enrollment_confirmed"
CERTIFICATE_ISSUED = "certificate_issued"
LESSON_REMINDER = "lesson_reminder"
# a reminder for a course whose lesson titles we were not told (an older lessons service)
PROGRESS_REMINDER = "progress_reminder"
CERTIFICATE_REVOKED = "certificate_revoked"
SIGN_IN_CODE = "sign_in_code"  # transactional; its {code} is never stored (sign_in_codes.py)

TEMPLATES = {
    ENROLLMENT_CONFIRMED: (
        "Chào {full_name}, bạn đã đăng ký khóa học \"{course_title}\" "
        "của chương trình Bình dân học vụ số. Chúc bạn học tốt!"),
    CERTIFICATE_ISSUED: (
        "Chúc mừng {full_name} đã hoàn thành khóa học \"{course_title}\". "
        "Mã chứng chỉ: {verification_code}. Tra cứu: {verify_url}"),
    CERTIFICATE_REVOKED: (
        "Chứng chỉ số {serial} khóa học \"{course_title}\" của {full_name} đã bị thu hồi "
        "ngày {revoked_on}. Lý do: {reason}"),
    LESSON_REMINDER: (
        "Chào {full_name}, đã {days} ngày bạn chưa học tiếp khóa \"{course_title}\". "
        "Bài tiếp theo: \"{lesson_title}\". Trả lời TUCHOI để không nhận nhắc nhở."),
    PROGRESS_REMINDER: (
        "Chào {full_name}, đã {days} ngày bạn chưa học tiếp khóa \"{course_title}\". "
        "Trả lời TUCHOI để không nhận nhắc nhở."),
    SIGN_IN_CODE: (
        "Mã đăng nhập Bình dân học vụ số: {code}. Mã có hiệu lực 5 phút. "
        "Không chia sẻ mã này với bất kỳ ai."),
}


def render(template: str, **values) -> str:
    return TEMPLATES[template].format(**values)


def vietnamese_day(moment: datetime) -> str:
    """The date as a learner in Vietnam reads it (UTC+7): 26/11/2026."""
    return moment.astimezone(VIETNAM).strftime("%d/%m/%Y")
