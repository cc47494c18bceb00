"""Masking of personal data for logs, API answers and anything else a person reads."""


def mask_phone(phone: str) -> str:
    """Keep the country prefix and the last 4 digits: +84912345678 -> +84*****5678."""
    if not phone:
        return ""
    keep_head = 3 if phone.startswith("+") else 0
    head, tail = phone[:keep_head], phone[-4:]
    hidden = max(len(phone) - keep_head - 4, 0)
    return f"{head}{'*' * hidden}{tail}"
