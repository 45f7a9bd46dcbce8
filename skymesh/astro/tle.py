"""Two-line element sets: parsing, validation, formatting, Alpha-5 catalog numbers and CelesTrak OMM.

A `TLE` is the validated text of one element set; everything numeric is derived from the two lines, so a TLE that
went through `parse_tle` always propagates with `sgp4` exactly as any other SGP4 user would propagate it.

Validation follows the fixed-column layout (NORAD/CelesTrak "TLE format"): 69 characters per line, line numbers
'1' and '2', the same catalog number on both lines, a modulo-10 checksum in column 69 (digits count their value,
'-' counts 1), parseable numeric fields, and elements that describe an orbit that can exist (mean motion > 0,
eccentricity < 1, perigee above the Earth's surface). Errors are `InvalidTLE` with `field` naming the line and
the column range, e.g. ``line1[69]``.

Runtime imports: the standard library, `sgp4` and `skymesh.core` only (this runs on a station's Raspberry Pi).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sgp4.api import WGS72, Satrec

from skymesh.core.errors import InvalidTLE

__all__ = [
    "ALPHA5_MAX",
    "TLE",
    "alpha5_to_int",
    "format_tle",
    "int_to_alpha5",
    "parse_tle",
    "parse_tle_file",
    "tle_checksum",
    "tle_from_omm",
]

ALPHA5_MAX = 339_999  # 'Z9999'
_ALPHA5_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # I and O are skipped: they look like 1 and 0
_TLE_LINE_LENGTH = 69

# WGS72, the constants SGP4 element sets are fitted with.
_MU_KM3_S2 = 398_600.8
_EARTH_RADIUS_KM = 6378.135
_SECONDS_PER_DAY = 86_400.0


# ---------------------------------------------------------------------------------------------------- Alpha-5


def alpha5_to_int(text: str) -> int:
    """Decode a 5-character catalog number: '25544' -> 25544, 'A0000' -> 100000, 'Z9999' -> 339999."""
    s = text.strip()
    if not s:
        raise InvalidTLE("catalog number is empty", field="norad_id")
    head, tail = s[0], s[1:]
    if head.isdigit():
        if not s.isdigit():
            raise InvalidTLE(f"catalog number {text!r} is not a number", field="norad_id")
        return int(s)
    letter = head.upper()
    if letter not in _ALPHA5_LETTERS or len(tail) != 4 or not tail.isdigit():
        raise InvalidTLE(
            f"catalog number {text!r} is neither digits nor Alpha-5 (a letter other than I or O, then 4 digits)",
            field="norad_id",
        )
    return (10 + _ALPHA5_LETTERS.index(letter)) * 10_000 + int(tail)


def int_to_alpha5(norad_id: int) -> str:
    """Encode a catalog number in 5 characters: 25544 -> '25544', 100000 -> 'A0000', 339999 -> 'Z9999'."""
    if isinstance(norad_id, bool) or not isinstance(norad_id, int):
        raise InvalidTLE(f"catalog number must be an int, got {norad_id!r}", field="norad_id")
    if not 0 <= norad_id <= ALPHA5_MAX:
        raise InvalidTLE(
            f"catalog number {norad_id} is outside 0..{ALPHA5_MAX} (the Alpha-5 range of a TLE)", field="norad_id"
        )
    if norad_id < 100_000:
        return f"{norad_id:05d}"
    block, rest = divmod(norad_id, 10_000)
    return f"{_ALPHA5_LETTERS[block - 10]}{rest:04d}"


# ---------------------------------------------------------------------------------------------------- checksums


def tle_checksum(line: str) -> int:
    """Modulo-10 checksum of the first 68 columns: digits count their value, '-' counts 1, all else 0."""
    total = 0
    for ch in line[:68]:
        if ch.isdigit():
            total += ord(ch) - 48
        elif ch == "-":
            total += 1
    return total % 10


# ---------------------------------------------------------------------------------------------------- TLE type


@dataclass(frozen=True)
class TLE:
    """One validated element set. Build it with `parse_tle`, `parse_tle_file`, `format_tle` or `tle_from_omm`."""

    name: str
    norad_id: int
    line1: str
    line2: str

    @property
    def epoch(self) -> datetime:
        """Epoch of the elements, tz-aware UTC (to the microsecond)."""
        return _parse_epoch(self.line1)

    @property
    def inclination_deg(self) -> float:
        return float(self.line2[8:16])

    @property
    def raan_deg(self) -> float:
        return float(self.line2[17:25])

    @property
    def eccentricity(self) -> float:
        return float("0." + self.line2[26:33].strip())

    @property
    def arg_perigee_deg(self) -> float:
        return float(self.line2[34:42])

    @property
    def mean_anomaly_deg(self) -> float:
        return float(self.line2[43:51])

    @property
    def mean_motion_rev_per_day(self) -> float:
        return float(self.line2[52:63])

    @property
    def bstar_per_earth_radius(self) -> float:
        return _parse_exp_field(self.line1[53:61], "line1[54-61]")

    @property
    def perigee_altitude_km(self) -> float:
        a_km = _semi_major_axis_km(self.mean_motion_rev_per_day)
        return a_km * (1.0 - self.eccentricity) - _EARTH_RADIUS_KM

    @property
    def apogee_altitude_km(self) -> float:
        a_km = _semi_major_axis_km(self.mean_motion_rev_per_day)
        return a_km * (1.0 + self.eccentricity) - _EARTH_RADIUS_KM

    def satrec(self) -> Satrec:
        """A fresh `sgp4.api.Satrec` for these elements (WGS72, the constants the elements were fitted with)."""
        return Satrec.twoline2rv(self.line1, self.line2, WGS72)

    def lines(self) -> tuple[str, str]:
        return self.line1, self.line2

    def as_text(self) -> str:
        """Three-line text (name line first when there is a name), newline-terminated."""
        head = f"{self.name}\n" if self.name else ""
        return f"{head}{self.line1}\n{self.line2}\n"


# ---------------------------------------------------------------------------------------------------- parsing


def _semi_major_axis_km(mean_motion_rev_per_day: float) -> float:
    n_rad_s = mean_motion_rev_per_day * 2.0 * math.pi / _SECONDS_PER_DAY
    return float((_MU_KM3_S2 / (n_rad_s * n_rad_s)) ** (1.0 / 3.0))


def _parse_exp_field(text: str, field: str) -> float:
    """Parse the implied-decimal exponent notation of BSTAR and n-ddot: ' 12345-3' = 0.12345e-3."""
    s = text.strip()
    if not s:
        return 0.0
    m = re.fullmatch(r"([+-]?)\.?(\d{1,5})\s*([+-])\s*(\d)", s)
    if m is None:
        # Some producers write a plain '0' or '00000+0' variants; accept a plain float too.
        try:
            return float(s)
        except ValueError:
            raise InvalidTLE(f"{s!r} is not an implied-decimal exponent like ' 12345-3'", field=field) from None
    sign, digits, exp_sign, exp = m.groups()
    value = float("0." + digits) * 10.0 ** (int(exp) * (-1 if exp_sign == "-" else 1))
    return -value if sign == "-" else value


def _parse_epoch(line1: str) -> datetime:
    yy_text, day_text = line1[18:20], line1[20:32]
    try:
        yy = int(yy_text)
        day = float(day_text)
    except ValueError:
        raise InvalidTLE(f"epoch {line1[18:32]!r} is not YYDDD.DDDDDDDD", field="line1[19-32]") from None
    if not 1.0 <= day < 367.0:
        raise InvalidTLE(f"epoch day of year {day} is outside 1..366", field="line1[21-32]")
    year = 1900 + yy if yy >= 57 else 2000 + yy
    start = datetime(year, 1, 1, tzinfo=UTC)
    return start + timedelta(microseconds=round((day - 1.0) * _SECONDS_PER_DAY * 1e6))


def _float_field(line: str, start: int, stop: int, which: str, what: str) -> float:
    text = line[start:stop]
    field = f"{which}[{start + 1}-{stop}]"
    try:
        return float(text)
    except ValueError:
        raise InvalidTLE(f"{what} {text!r} is not a number", field=field) from None


def _check_line(line: str, which: str, number: str) -> None:
    if len(line) != _TLE_LINE_LENGTH:
        raise InvalidTLE(f"must be {_TLE_LINE_LENGTH} characters, got {len(line)}: {line!r}", field=which)
    if line[0] != number:
        raise InvalidTLE(f"must start with line number {number!r}, got {line[0]!r}", field=f"{which}[1]")
    if line[1] != " ":
        raise InvalidTLE(f"column 2 must be a space, got {line[1]!r}", field=f"{which}[2]")
    if not line[68].isdigit():
        raise InvalidTLE(f"checksum {line[68]!r} in column 69 is not a digit", field=f"{which}[69]")
    expected = tle_checksum(line)
    if int(line[68]) != expected:
        raise InvalidTLE(
            f"checksum mismatch in column 69: line says {line[68]}, modulo-10 sum of columns 1-68 is {expected}",
            field=f"{which}[69]",
        )


def parse_tle(line1: str, line2: str, name: str = "") -> TLE:
    """Validate two TLE lines and return a `TLE`. Raises `InvalidTLE` naming the line and column on bad input."""
    if not isinstance(line1, str) or not isinstance(line2, str):
        raise InvalidTLE("TLE lines must be strings", field="line1")
    l1 = line1.rstrip("\r\n ").rstrip()
    l2 = line2.rstrip("\r\n ").rstrip()
    _check_line(l1, "line1", "1")
    _check_line(l2, "line2", "2")

    sat1 = l1[2:7]
    sat2 = l2[2:7]
    norad1 = _catalog_field(sat1, "line1[3-7]")
    norad2 = _catalog_field(sat2, "line2[3-7]")
    if norad1 != norad2:
        raise InvalidTLE(
            f"catalog numbers differ: line 1 has {sat1.strip()!r}, line 2 has {sat2.strip()!r}", field="line2[3-7]"
        )

    _parse_epoch(l1)
    _float_field(l1, 33, 43, "line1", "mean motion first derivative")
    _parse_exp_field(l1[44:52], "line1[45-52]")
    _parse_exp_field(l1[53:61], "line1[54-61]")

    inclination_deg = _float_field(l2, 8, 16, "line2", "inclination")
    raan_deg = _float_field(l2, 17, 25, "line2", "right ascension of the ascending node")
    ecc_text = l2[26:33]
    if not ecc_text.strip().isdigit():
        raise InvalidTLE(
            f"eccentricity {ecc_text!r} must be digits (implied leading decimal point)", field="line2[27-33]"
        )
    eccentricity = float("0." + ecc_text.strip())
    arg_perigee_deg = _float_field(l2, 34, 42, "line2", "argument of perigee")
    mean_anomaly_deg = _float_field(l2, 43, 51, "line2", "mean anomaly")
    mean_motion = _float_field(l2, 52, 63, "line2", "mean motion")

    if not 0.0 <= inclination_deg <= 180.0:
        raise InvalidTLE(f"inclination {inclination_deg} deg is outside 0..180", field="line2[9-16]")
    for value, what, field in (
        (raan_deg, "right ascension of the ascending node", "line2[18-25]"),
        (arg_perigee_deg, "argument of perigee", "line2[35-42]"),
        (mean_anomaly_deg, "mean anomaly", "line2[44-51]"),
    ):
        if not 0.0 <= value <= 360.0:
            raise InvalidTLE(f"{what} {value} deg is outside 0..360", field=field)
    _check_orbit(mean_motion, eccentricity, field="line2[53-63]")

    tle = TLE(name=name.strip(), norad_id=norad1, line1=l1, line2=l2)
    sat = tle.satrec()
    if sat.error != 0:
        raise InvalidTLE(f"sgp4 rejects these elements (error code {sat.error})", field="line2")
    return tle


def _catalog_field(text: str, field: str) -> int:
    try:
        return alpha5_to_int(text)
    except InvalidTLE as exc:
        raise InvalidTLE(exc.message, field=field) from None


def _check_orbit(mean_motion_rev_per_day: float, eccentricity: float, *, field: str) -> None:
    if not mean_motion_rev_per_day > 0.0 or not math.isfinite(mean_motion_rev_per_day):
        raise InvalidTLE(f"impossible orbit: mean motion {mean_motion_rev_per_day} rev/day must be > 0", field=field)
    if not 0.0 <= eccentricity < 1.0:
        raise InvalidTLE(f"impossible orbit: eccentricity {eccentricity} must be in [0, 1)", field="eccentricity")
    perigee_km = _semi_major_axis_km(mean_motion_rev_per_day) * (1.0 - eccentricity)
    if perigee_km <= _EARTH_RADIUS_KM:
        raise InvalidTLE(
            f"impossible orbit: perigee {perigee_km - _EARTH_RADIUS_KM:.1f} km is below the Earth's surface "
            f"(mean motion {mean_motion_rev_per_day} rev/day, eccentricity {eccentricity})",
            field=field,
        )


def parse_tle_file(text: str) -> list[TLE]:
    """Parse 2-line or 3-line (name line first; CelesTrak's '0 NAME' form too) element sets; blank lines skipped.

    Errors carry `field` = ``"line N"`` (1-based line number in `text`) and the column detail in the message.
    """
    rows = [(i + 1, raw.rstrip()) for i, raw in enumerate(text.splitlines())]
    rows = [(n, line) for n, line in rows if line.strip()]
    out: list[TLE] = []
    i = 0
    while i < len(rows):
        n, line = rows[i]
        name = ""
        if not line.startswith("1 "):
            name = line[2:] if line.startswith("0 ") else line
            i += 1
            if i >= len(rows):
                raise InvalidTLE(f"name {name.strip()!r} is not followed by TLE lines", field=f"line {n}")
            n, line = rows[i]
        if not line.startswith("1 "):
            raise InvalidTLE(f"expected TLE line 1, got {line!r}", field=f"line {n}")
        if i + 1 >= len(rows):
            raise InvalidTLE("TLE line 1 is not followed by line 2", field=f"line {n}")
        n2, line2 = rows[i + 1]
        try:
            out.append(parse_tle(line, line2, name=name))
        except InvalidTLE as exc:
            where = f"line {n}" if (exc.field or "").startswith("line1") else f"line {n2}"
            raise InvalidTLE(f"{exc.field}: {exc.message}", field=where) from None
        i += 2
    return out


# ---------------------------------------------------------------------------------------------------- formatting


def _format_exp_field(value: float, field: str) -> str:
    """8 characters: sign, 5-digit mantissa with implied leading decimal point, exponent sign and digit."""
    if not math.isfinite(value):
        raise InvalidTLE(f"{value} is not finite", field=field)
    if value == 0.0:
        return " 00000-0"
    sign = "-" if value < 0 else " "
    mag = abs(value)
    exponent = math.floor(math.log10(mag)) + 1
    mantissa = round(mag / 10.0**exponent * 1e5)
    if mantissa >= 100_000:
        mantissa //= 10
        exponent += 1
    if exponent < -9:
        return " 00000-0"
    if exponent > 9:
        raise InvalidTLE(f"{value} does not fit the TLE exponent notation", field=field)
    return f"{sign}{mantissa:05d}{'-' if exponent < 0 else '+'}{abs(exponent)}"


def _format_ndot(value: float) -> str:
    text = f"{value:.8f}"
    if abs(float(text)) >= 1.0:
        raise InvalidTLE(f"mean motion first derivative {value} must be below 1 rev/day^2", field="mean_motion_dot")
    sign = "-" if text.startswith("-") and float(text) != 0.0 else " "
    return f"{sign}{text.lstrip('-')[1:]}"  # drop the leading '0'


def _format_angle(value: float, field: str, upper: float) -> str:
    if not math.isfinite(value):
        raise InvalidTLE(f"{value} is not finite", field=field)
    v = value % 360.0 if upper == 360.0 else value
    text = f"{v:8.4f}"
    if upper == 360.0 and float(text) >= 360.0:
        text = f"{0.0:8.4f}"
    if not 0.0 <= float(text) <= upper:
        raise InvalidTLE(f"{value} deg is outside 0..{upper:g}", field=field)
    return text


def format_tle(
    *,
    norad_id: int,
    epoch: datetime,
    inclination_deg: float,
    raan_deg: float,
    eccentricity: float,
    arg_perigee_deg: float,
    mean_anomaly_deg: float,
    mean_motion_rev_per_day: float,
    bstar_per_earth_radius: float = 0.0,
    mean_motion_dot_rev_per_day2: float = 0.0,
    mean_motion_ddot_rev_per_day3: float = 0.0,
    classification: str = "U",
    intl_designator: str = "",
    element_set_no: int = 999,
    rev_number: int = 0,
    ephemeris_type: int = 0,
    name: str = "",
) -> TLE:
    """Build a TLE from mean elements, with correct columns and checksums, and validate it with `parse_tle`.

    `mean_motion_dot_rev_per_day2` and `mean_motion_ddot_rev_per_day3` are the values as printed in a TLE (the
    first derivative already halved, the second already divided by six), as in CelesTrak OMM's MEAN_MOTION_DOT and
    MEAN_MOTION_DDOT. Angles are reduced modulo 360 (inclination must be in 0..180). The epoch is rounded to the
    TLE's 1e-8 day (0.864 ms).
    """
    if epoch.tzinfo is None:
        raise InvalidTLE("epoch must be timezone-aware (UTC)", field="epoch")
    epoch_utc = epoch.astimezone(UTC)
    if not 1957 <= epoch_utc.year <= 2056:
        raise InvalidTLE(f"epoch year {epoch_utc.year} is outside 1957..2056 (2-digit TLE years)", field="epoch")
    if not 0.0 <= eccentricity < 1.0:
        raise InvalidTLE(f"impossible orbit: eccentricity {eccentricity} must be in [0, 1)", field="eccentricity")
    ecc_digits = round(eccentricity * 1e7)
    if ecc_digits >= 10_000_000:
        raise InvalidTLE(f"impossible orbit: eccentricity {eccentricity} rounds to 1", field="eccentricity")
    _check_orbit(mean_motion_rev_per_day, eccentricity, field="mean_motion_rev_per_day")
    if len(classification) != 1:
        raise InvalidTLE("classification must be one character (U, C or S)", field="classification")
    if len(intl_designator) > 8:
        raise InvalidTLE("international designator has at most 8 characters", field="intl_designator")
    if not 0 <= ephemeris_type <= 9:
        raise InvalidTLE("ephemeris type must be one digit", field="ephemeris_type")

    sat = int_to_alpha5(norad_id)
    start_of_year = datetime(epoch_utc.year, 1, 1, tzinfo=UTC)
    day = 1.0 + (epoch_utc - start_of_year).total_seconds() / _SECONDS_PER_DAY
    day_text = f"{day:012.8f}"
    mm_text = f"{mean_motion_rev_per_day:11.8f}"
    if len(mm_text) != 11:
        raise InvalidTLE(f"mean motion {mean_motion_rev_per_day} rev/day does not fit 11 columns", field="mean_motion")

    body1 = (
        f"1 {sat}{classification} {intl_designator:<8} {epoch_utc.year % 100:02d}{day_text} "
        f"{_format_ndot(mean_motion_dot_rev_per_day2)} "
        f"{_format_exp_field(mean_motion_ddot_rev_per_day3, 'mean_motion_ddot')} "
        f"{_format_exp_field(bstar_per_earth_radius, 'bstar')} "
        f"{ephemeris_type} {element_set_no % 10000:4d}"
    )
    body2 = (
        f"2 {sat} {_format_angle(inclination_deg, 'inclination_deg', 180.0)} "
        f"{_format_angle(raan_deg, 'raan_deg', 360.0)} {ecc_digits:07d} "
        f"{_format_angle(arg_perigee_deg, 'arg_perigee_deg', 360.0)} "
        f"{_format_angle(mean_anomaly_deg, 'mean_anomaly_deg', 360.0)} {mm_text}{rev_number % 100000:5d}"
    )
    line1 = body1 + str(tle_checksum(body1))
    line2 = body2 + str(tle_checksum(body2))
    return parse_tle(line1, line2, name=name)


# ---------------------------------------------------------------------------------------------------- OMM


_OMM_REQUIRED = (
    "NORAD_CAT_ID",
    "EPOCH",
    "MEAN_MOTION",
    "ECCENTRICITY",
    "INCLINATION",
    "RA_OF_ASC_NODE",
    "ARG_OF_PERICENTER",
    "MEAN_ANOMALY",
)


def _omm_epoch(value: Any) -> datetime:
    text = str(value).strip().rstrip("Z")
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise InvalidTLE(f"EPOCH {value!r} is not an ISO 8601 time like 2024-01-01T12:00:00.000000", field="EPOCH")


def tle_from_omm(omm: Mapping[str, Any]) -> TLE:
    """Convert one CelesTrak OMM record (JSON or CSV dict, values as numbers or strings) to a `TLE`.

    The record is first checked with `sgp4.omm.initialize` (the reference OMM reader), then printed as TLE text:
    the TLE carries the elements at TLE precision (1e-4 deg, 1e-7 eccentricity, 1e-8 rev/day).
    """
    from sgp4 import omm as sgp4_omm

    missing = [key for key in _OMM_REQUIRED if key not in omm or omm[key] in (None, "")]
    if missing:
        raise InvalidTLE(f"OMM record lacks {', '.join(missing)}", field=missing[0])

    def num(key: str, default: float = 0.0) -> float:
        value = omm.get(key, default)
        if value in (None, ""):
            return default
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InvalidTLE(f"{key} {value!r} is not a number", field=key) from None

    try:
        norad_id = int(str(omm["NORAD_CAT_ID"]).strip())
    except ValueError:
        raise InvalidTLE(f"NORAD_CAT_ID {omm['NORAD_CAT_ID']!r} is not an integer", field="NORAD_CAT_ID") from None
    epoch = _omm_epoch(omm["EPOCH"])
    object_id = str(omm.get("OBJECT_ID") or "")
    # '1998-067A' -> '98067A', the TLE's international designator.
    intl = object_id[2:].replace("-", "") if len(object_id) >= 9 and object_id[4] == "-" else ""

    normalized = {
        "CLASSIFICATION_TYPE": str(omm.get("CLASSIFICATION_TYPE") or "U"),
        "OBJECT_ID": object_id or "2000-000A",
        "EPHEMERIS_TYPE": str(int(num("EPHEMERIS_TYPE"))),
        "ELEMENT_SET_NO": str(int(num("ELEMENT_SET_NO", 999.0))),
        "REV_AT_EPOCH": str(int(num("REV_AT_EPOCH"))),
        "EPOCH": epoch.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "ARG_OF_PERICENTER": str(num("ARG_OF_PERICENTER")),
        "BSTAR": str(num("BSTAR")),
        "ECCENTRICITY": str(num("ECCENTRICITY")),
        "INCLINATION": str(num("INCLINATION")),
        "MEAN_ANOMALY": str(num("MEAN_ANOMALY")),
        "MEAN_MOTION_DDOT": str(num("MEAN_MOTION_DDOT")),
        "MEAN_MOTION_DOT": str(num("MEAN_MOTION_DOT")),
        "MEAN_MOTION": str(num("MEAN_MOTION")),
        "RA_OF_ASC_NODE": str(num("RA_OF_ASC_NODE")),
        "NORAD_CAT_ID": str(norad_id),
    }
    _check_orbit(num("MEAN_MOTION"), num("ECCENTRICITY"), field="MEAN_MOTION")
    sat = Satrec()
    try:
        sgp4_omm.initialize(sat, normalized)
    except (ValueError, KeyError) as exc:
        raise InvalidTLE(f"sgp4 cannot read this OMM record: {exc}", field="OMM") from None
    if sat.error != 0:
        raise InvalidTLE(f"sgp4 rejects these elements (error code {sat.error})", field="OMM")

    return format_tle(
        norad_id=norad_id,
        epoch=epoch,
        inclination_deg=num("INCLINATION"),
        raan_deg=num("RA_OF_ASC_NODE"),
        eccentricity=num("ECCENTRICITY"),
        arg_perigee_deg=num("ARG_OF_PERICENTER"),
        mean_anomaly_deg=num("MEAN_ANOMALY"),
        mean_motion_rev_per_day=num("MEAN_MOTION"),
        bstar_per_earth_radius=num("BSTAR"),
        mean_motion_dot_rev_per_day2=num("MEAN_MOTION_DOT"),
        mean_motion_ddot_rev_per_day3=num("MEAN_MOTION_DDOT"),
        classification=normalized["CLASSIFICATION_TYPE"][:1],
        intl_designator=intl,
        element_set_no=int(num("ELEMENT_SET_NO", 999.0)),
        rev_number=int(num("REV_AT_EPOCH")),
        ephemeris_type=int(num("EPHEMERIS_TYPE")),
        name=str(omm.get("OBJECT_NAME") or ""),
    )
