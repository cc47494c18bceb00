"""Vietnam's provinces and communes since 1 July 2025 (README.md beside this file: source
and licence). Loaded once per process, on first use."""
import csv
import functools
from dataclasses import dataclass
from pathlib import Path

UNITS_FILE = Path(__file__).with_name("vn-admin-units-2025.csv")


@dataclass(frozen=True)
class Commune:
    province_code: str
    province_name: str
    code: str
    name: str


@functools.cache
def communes() -> dict[str, Commune]:
    """Every commune and ward, by its 5-digit code."""
    with UNITS_FILE.open(encoding="utf-8", newline="") as source:
        return {row["commune_code"]: Commune(row["province_code"], row["province_name"],
                                             row["commune_code"], row["commune_name"])
                for row in csv.DictReader(source)}


@functools.cache
def provinces() -> dict[str, str]:
    """Province code -> name."""
    return {c.province_code: c.province_name for c in communes().values()}


def communes_of(province_code: str) -> list[Commune]:
    return [c for c in communes().values() if c.province_code == province_code]


def commune_problems(province_code: str, commune_code: str) -> list[str]:
    """Why `commune_code` is not a commune or ward of `province_code`; empty if it is."""
    commune = communes().get(commune_code)
    if commune is None:
        return [f"{commune_code} is no commune or ward code since 1 July 2025"]
    if commune.province_code != province_code:
        return [f"{commune_code} ({commune.name}) is in {commune.province_name} "
                f"({commune.province_code}), not in province {province_code}"]
    return []


def province_of(commune_code: str) -> str | None:
    """The province a commune or ward belongs to; None for a code that is none."""
    commune = communes().get(commune_code)
    return commune.province_code if commune else None
