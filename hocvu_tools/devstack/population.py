"""Made-up but valid learners, for load tests and benchmarks: Vietnamese names, mobile
numbers on real prefixes, 12-digit citizen IDs that encode the birth year, all four groups,
living in the communes of one province (a province runs its own platform: Thanh Hóa, 38, by
default), born in several. Deterministic for a seed; the n-th learner's ID is unique in a run."""
import functools
import random
from dataclasses import dataclass

from hocvu.reference import communes_of
from services.enrollment.identity import normalize_phone

FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi",
          "Đỗ", "Hồ", "Ngô", "Dương", "Lý"]
MIDDLE = ["Văn", "Thị", "Hữu", "Đức", "Minh", "Ngọc", "Thanh", "Quang", "Thu", "Xuân"]
GIVEN = ["An", "Bình", "Châu", "Dũng", "Giang", "Hà", "Hải", "Hạnh", "Hoa", "Hùng", "Hương",
         "Khánh", "Lan", "Linh", "Long", "Mai", "Nam", "Nga", "Phúc", "Quân", "Sơn", "Tâm",
         "Thảo", "Trang", "Tuấn", "Vy", "Yến"]
# prefixes whose whole range libphonenumber knows as mobile (not 089: only partly)
MOBILE_PREFIXES = ["032", "033", "034", "035", "036", "037", "038", "039", "056", "058", "070",
                   "076", "077", "078", "079", "081", "082", "083", "084", "085", "086", "088",
                   "090", "091", "093", "094", "096", "097", "098"]
GROUPS = ("official", "student", "worker", "citizen")
# old (pre-2025) province codes a CCCD may start with: where the learners were born
ID_PROVINCES = ["038", "038", "038", "040", "001", "079", "048"]
PROVINCE = "38"


@dataclass(frozen=True)
class Learner:
    full_name: str
    phone: str
    national_id: str
    birth_year: int
    group: str
    province_code: str
    commune_code: str

    def as_json(self) -> dict:
        return dict(self.__dict__)


def learner(n: int, seed: int = 0, province: str = PROVINCE) -> Learner:
    rng = random.Random(seed * 1_000_003 + n)
    group = GROUPS[n % len(GROUPS)]
    birth_year = {"student": rng.randint(2004, 2012)}.get(group, rng.randint(1950, 2003))
    id_prefix = rng.choice(ID_PROVINCES)
    century_sex = (birth_year // 100 - 19) * 2 + rng.randint(0, 1)
    # the last six digits carry n, so IDs never repeat within a run of under a million
    national_id = f"{id_prefix}{century_sex}{birth_year % 100:02d}{(seed * 7919 + n) % 1_000_000:06d}"
    phone = f"{rng.choice(MOBILE_PREFIXES)}{rng.randint(0, 9_999_999):07d}"
    normalize_phone(phone)  # fails loudly if a prefix stops being valid
    return Learner(full_name=f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}",
                   phone=phone, national_id=national_id, birth_year=birth_year, group=group,
                   province_code=province, commune_code=rng.choice(_commune_codes(province)))


@functools.cache
def _commune_codes(province: str) -> list[str]:
    return sorted(c.code for c in communes_of(province))
