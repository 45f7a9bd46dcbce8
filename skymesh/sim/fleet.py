"""A simulated network for demos and load tests: real ground-station and observatory sites, well-known variable
stars, and satellites of real orbit families with freshly generated elements.

`build_demo_fleet(now)` picks what makes a short demo show real work: telescopes at sites where it is night now,
and, besides the generated constellation, a few satellites whose next pass over a demo ground station starts within
a minute or two (found by propagating many candidate orbits at once, not by faking a pass).

Every satellite carries a `SpacecraftProfile` sized for its family (`demo_profile`): CubeSats with 20-40 Wh and a
few watts of charging, bigger buses for SSO, polar and ISS-like orbits; the first CubeSat of the constellation is
deliberately power-starved, so the scheduler visibly drops some of its contacts for power. The satellites picked to
pass a station soon get comfortable margins: the demo's goal depends on their passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from skymesh.core.model import (
    CelestialTarget,
    GeoLocation,
    SatelliteTarget,
    SpacecraftProfile,
    Station,
    StationKind,
)

__all__ = [
    "GROUND_SITES",
    "OBSERVATORIES",
    "VARIABLE_STARS",
    "DemoFleet",
    "VariableStar",
    "build_demo_fleet",
    "demo_profile",
]

# family -> (battery Wh, charge W, payload W, downlink W, payload B/s, downlink B/s, storage bytes); ranges are +-25%.
_FAMILY_BUS: dict[str, tuple[float, float, float, float, float, float, float]] = {
    "cubesat": (30.0, 5.0, 3.0, 8.0, 200.0, 1.2e3, 2e9),  # 1-3U, UHF 9k6
    "polar": (100.0, 40.0, 15.0, 20.0, 5e3, 1.2e4, 8e9),
    "sso": (150.0, 60.0, 40.0, 30.0, 1e5, 2.5e5, 64e9),  # EO smallsat, S-band
    "starlink": (400.0, 150.0, 80.0, 60.0, 1e4, 1e6, 64e9),
    "iss": (2000.0, 800.0, 300.0, 120.0, 2e4, 1e6, 512e9),
}


def demo_profile(target_id: str, family: str, rng: np.random.Generator, *, starved: bool = False) -> SpacecraftProfile:
    """A plausible profile for a satellite of `family`; `starved`: a CubeSat that cannot afford every contact."""
    if starved:
        # 2 Wh above its floor, 1 W net charging in sunlight and a 20 W transmitter: a long pass costs about 3 Wh,
        # so it can afford some contacts but not all of them.
        return SpacecraftProfile(
            target_id, battery_capacity_wh=20.0, min_soc=0.5, charge_power_w=2.0, initial_soc=0.6,
            activity_power_w={"standby": 0.5, "payload": 1.0, "downlink": 20.0}, storage_capacity_bytes=2e9,
            payload_data_rate_bytes_per_s=200.0, downlink_rate_bytes_per_s=1.2e3,
        )  # fmt: skip
    battery, charge, payload, downlink, data, rate, storage = _FAMILY_BUS.get(family, _FAMILY_BUS["polar"])
    k = rng.uniform(0.75, 1.25, size=4)
    return SpacecraftProfile(
        target_id,
        battery_capacity_wh=round(battery * k[0], 1),
        min_soc=round(float(rng.uniform(0.25, 0.4)), 2),
        charge_power_w=round(charge * k[1], 1),
        initial_soc=round(float(rng.uniform(0.7, 1.0)), 2),
        activity_power_w={
            "standby": round(payload * 0.2, 1),
            "payload": round(payload * k[2], 1),
            "downlink": round(downlink * k[3], 1),
        },
        storage_capacity_bytes=storage,
        payload_data_rate_bytes_per_s=data,
        downlink_rate_bytes_per_s=rate,
    )


@dataclass(frozen=True)
class Site:
    site_id: str
    name: str
    latitude_deg: float
    longitude_deg: float
    altitude_m: float


@dataclass(frozen=True)
class VariableStar:
    target_id: str
    name: str
    ra_deg: float  # J2000
    dec_deg: float
    magnitude: float  # mean V
    amplitude_mag: float
    period_days: float


# Volunteer-style ground stations (city sites) with the bands such stations commonly carry.
GROUND_SITES: tuple[tuple[Site, tuple[str, ...]], ...] = (
    (Site("gs-athens", "Athens", 37.98, 23.73, 100.0), ("VHF", "UHF")),
    (Site("gs-bremen", "Bremen", 53.08, 8.80, 10.0), ("VHF", "UHF")),
    (Site("gs-boulder", "Boulder", 40.015, -105.27, 1655.0), ("UHF", "S")),
    (Site("gs-tokyo", "Tokyo", 35.68, 139.69, 40.0), ("VHF", "UHF")),
    (Site("gs-sydney", "Sydney", -33.87, 151.21, 50.0), ("UHF",)),
    (Site("gs-capetown", "Cape Town", -33.92, 18.42, 20.0), ("VHF", "UHF")),
    (Site("gs-santiago", "Santiago", -33.45, -70.67, 570.0), ("UHF", "S")),
    (Site("gs-reykjavik", "Reykjavik", 64.13, -21.90, 30.0), ("VHF", "UHF")),
    (Site("gs-singapore", "Singapore", 1.35, 103.82, 15.0), ("UHF",)),
    (Site("gs-fairbanks", "Fairbanks", 64.84, -147.72, 136.0), ("UHF", "S")),
)

# Professional and university observatory sites: (site, aperture m, filters, limiting magnitude).
OBSERVATORIES: tuple[tuple[Site, float, tuple[str, ...], float], ...] = (
    (Site("tel-maunakea", "Mauna Kea", 19.8207, -155.4681, 4205.0), 0.6, ("B", "V", "R"), 18.0),
    (Site("tel-lapalma", "La Palma", 28.7606, -17.8814, 2396.0), 0.4, ("V", "R", "I"), 17.0),
    (Site("tel-tololo", "Cerro Tololo", -30.1690, -70.8063, 2207.0), 1.0, ("B", "V", "R", "I"), 19.0),
    (Site("tel-sidingspring", "Siding Spring", -31.2733, 149.0617, 1165.0), 0.4, ("V", "R"), 17.0),
    (Site("tel-sutherland", "Sutherland", -32.3783, 20.8117, 1798.0), 0.5, ("B", "V"), 17.5),
    (Site("tel-kittpeak", "Kitt Peak", 31.9583, -111.5967, 2096.0), 0.9, ("B", "V", "R"), 18.5),
    (Site("tel-mtabu", "Mount Abu", 24.6537, 72.7793, 1680.0), 0.5, ("V", "R"), 17.0),
    (Site("tel-xinglong", "Xinglong", 40.3958, 117.5772, 960.0), 0.6, ("B", "V", "R"), 17.5),
    (Site("tel-teide", "Teide", 28.3003, -16.5122, 2390.0), 0.4, ("V", "R"), 17.0),
    (Site("tel-wise", "Wise Observatory", 30.5958, 34.7633, 875.0), 0.4, ("V", "R"), 16.5),
    (Site("tel-haleakala", "Haleakala", 20.7075, -156.2561, 3055.0), 0.4, ("B", "V"), 17.0),
    (Site("tel-mcdonald", "McDonald", 30.6797, -104.0247, 2077.0), 0.8, ("V", "R", "I"), 18.0),
)

# Well-known variables spread over the sky (J2000 coordinates, V band).
VARIABLE_STARS: tuple[VariableStar, ...] = (
    VariableStar("delta-cep", "delta Cep", 337.2928, 58.4152, 3.95, 0.45, 5.366),
    VariableStar("eta-aql", "eta Aql", 298.1182, 1.0057, 3.95, 0.45, 7.177),
    VariableStar("rr-lyr", "RR Lyr", 291.3663, 42.7844, 7.6, 0.55, 0.5669),
    VariableStar("algol", "Algol", 47.0422, 40.9556, 2.3, 0.6, 2.867),
    VariableStar("mira", "Mira", 34.8366, -2.9776, 6.0, 3.5, 332.0),
    VariableStar("beta-lyr", "beta Lyr", 282.5200, 33.3627, 3.8, 0.5, 12.94),
    VariableStar("w-uma", "W UMa", 145.9396, 55.9526, 8.1, 0.37, 0.3336),
    VariableStar("zeta-gem", "zeta Gem", 106.0272, 20.5703, 3.9, 0.3, 10.15),
    VariableStar("l-car", "l Car", 146.3117, -62.5079, 3.75, 0.45, 35.56),
    VariableStar("r-dor", "R Dor", 69.1900, -62.0772, 5.7, 0.9, 338.0),
    VariableStar("l2-pup", "L2 Pup", 108.3847, -44.6397, 4.4, 1.8, 141.0),
    VariableStar("beta-dor", "beta Dor", 83.4063, -62.4898, 3.75, 0.35, 9.84),
    VariableStar("rs-pup", "RS Pup", 123.2675, -34.5786, 7.1, 0.6, 41.39),
    VariableStar("kappa-pav", "kappa Pav", 284.2375, -67.2336, 4.35, 0.45, 9.09),
    # Fainter RR Lyrae stars: unsaturated in short exposures on small telescopes.
    VariableStar("sw-and", "SW And", 5.9296, 29.4011, 9.7, 0.45, 0.4423),
    VariableStar("x-ari", "X Ari", 47.1288, 10.4458, 9.6, 0.5, 0.6512),
    VariableStar("ar-per", "AR Per", 64.3217, 47.4003, 10.5, 0.5, 0.4256),
    VariableStar("tu-uma", "TU UMa", 172.4521, 30.0672, 9.8, 0.45, 0.5577),
    VariableStar("su-dra", "SU Dra", 174.4858, 67.3297, 9.8, 0.45, 0.6604),
    VariableStar("rz-cep", "RZ Cep", 339.8042, 64.8586, 9.4, 0.35, 0.3087),
)

_BAND_FREQUENCY_HZ = {"VHF": 145.9e6, "UHF": 437.5e6, "S": 2.245e9}


@dataclass(frozen=True)
class DemoFleet:
    stations: tuple[Station, ...]
    satellites: tuple[SatelliteTarget, ...]
    stars: tuple[CelestialTarget, ...]
    variables: tuple[VariableStar, ...]
    # target_id of satellites chosen because they pass a demo station soon -> (station_id, AOS)
    soon: dict[str, tuple[str, datetime]]


def _sun_altitude_deg(site: Site, now: datetime) -> float:
    from skymesh.astro import celestial, frames

    jd = frames.datetime_to_jd(now)
    return float(np.ravel(celestial.sun_altitude_deg(site.latitude_deg, site.longitude_deg, jd))[0])


def build_demo_fleet(
    now: datetime,
    *,
    ground_stations: int = 4,
    telescopes: int = 3,
    satellites: int = 24,
    seed: int = 7,
    soon_within_s: tuple[float, float] = (35.0, 75.0),
) -> DemoFleet:
    """Stations, satellites and stars for a demo starting at `now`."""
    from skymesh.astro.tle_gen import generate_tles

    rng = np.random.default_rng(seed)
    gs_sites = list(GROUND_SITES[:ground_stations])
    stations: list[Station] = [
        Station(
            station_id=site.site_id,
            name=site.name,
            kind=StationKind.GROUND_STATION,
            location=GeoLocation(site.latitude_deg, site.longitude_deg, site.altitude_m),
            min_elevation_deg=10.0,
            bands=bands,
            slew_rate_deg_s=6.0,
        )
        for site, bands in gs_sites
    ]
    # Telescopes where it is astronomical-ish night now (sun below -12 deg), darkest first.
    dark = sorted(
        ((_sun_altitude_deg(site, now), site, ap, filt, lim) for site, ap, filt, lim in OBSERVATORIES),
        key=lambda item: item[0],
    )
    for _alt, site, aperture, filters, limit in dark[:telescopes]:
        stations.append(
            Station(
                station_id=site.site_id,
                name=site.name,
                kind=StationKind.TELESCOPE,
                location=GeoLocation(site.latitude_deg, site.longitude_deg, site.altitude_m),
                min_elevation_deg=20.0,
                slew_rate_deg_s=3.0,
                aperture_m=aperture,
                filters=filters,
                limiting_magnitude=limit,
                fov_deg=0.5,
            )
        )

    families = ("iss", "sso", "starlink", "polar", "cubesat")
    tles = []
    per_family = max(1, satellites // len(families))
    for i, family in enumerate(families):
        tles += generate_tles(family, per_family, now, seed=seed + i, norad_base=90000 + 1000 * i)
    sats: list[SatelliteTarget] = []
    band_names = ("UHF", "UHF", "VHF", "S")
    profile_rng = np.random.default_rng(seed + 1000)  # its own stream: bands and priorities stay as they were
    tle_families = _families(families, per_family)
    starved = next((t.norad_id for t, f in zip(tles, tle_families, strict=True) if f == "cubesat"), None)
    for tle, family in zip(tles, tle_families, strict=True):
        band = band_names[int(rng.integers(len(band_names)))]
        target_id = f"sat-{tle.norad_id}"
        profile = demo_profile(target_id, family, profile_rng, starved=tle.norad_id == starved)
        sats.append(
            SatelliteTarget(
                target_id=f"sat-{tle.norad_id}",
                name=tle.name,
                norad_id=tle.norad_id,
                tle_line1=tle.line1,
                tle_line2=tle.line2,
                band=band,
                downlink_frequency_hz=_BAND_FREQUENCY_HZ[band],
                priority=int(rng.integers(3, 8)),
                spacecraft=profile,
            )
        )
    soon_sats, soon = _soon_passing(stations[: len(gs_sites)], now, soon_within_s, seed, tles)
    sats.extend(soon_sats)

    stars = tuple(
        CelestialTarget(
            target_id=star.target_id,
            name=star.name,
            ra_deg=star.ra_deg,
            dec_deg=star.dec_deg,
            magnitude=star.magnitude,
            priority=8 if star.magnitude > 7.0 else 5,
            filters=("V",),
            exposure_s=2.0 if star.magnitude > 7.0 else 0.5,
            exposure_count=3,
            max_airmass=2.5,
            min_moon_separation_deg=15.0,
        )
        for star in VARIABLE_STARS
    )
    return DemoFleet(
        stations=tuple(stations),
        satellites=tuple(sats),
        stars=stars,
        variables=VARIABLE_STARS,
        soon=soon,
    )


def _families(families: tuple[str, ...], per_family: int) -> list[str]:
    return [f for f in families for _ in range(per_family)]


def _comfortable(target_id: str) -> SpacecraftProfile:
    """A well-charged bus for the satellites the demo's goal depends on."""
    return SpacecraftProfile(
        target_id, battery_capacity_wh=120.0, min_soc=0.3, charge_power_w=50.0, initial_soc=0.95,
        activity_power_w={"standby": 2.0, "payload": 10.0, "downlink": 15.0}, storage_capacity_bytes=8e9,
        payload_data_rate_bytes_per_s=2e3, downlink_rate_bytes_per_s=1.2e4,
    )  # fmt: skip


def _soon_passing(
    ground_stations: list[Station], now: datetime, within_s: tuple[float, float], seed: int, fleet: list[Any]
) -> tuple[list[SatelliteTarget], dict[str, tuple[str, datetime]]]:
    """One high-priority satellite per ground station whose pass starts within `within_s` of now and is short.

    Candidates are real orbit families with random phases; all are propagated at once, together with the `fleet`'s
    own satellites, and the passes found by the same pipeline the scheduler uses. A candidate is taken only if
    nothing else competes for its station (or for the satellite elsewhere) around its pass, so the planner, which
    prefers long passes, will schedule it.
    """
    from skymesh.astro.passes import find_passes
    from skymesh.astro.propagate import SatelliteBatch
    from skymesh.astro.tle_gen import generate_tles

    candidates = list(fleet)
    for i, family in enumerate(("cubesat", "sso", "iss", "starlink")):
        candidates += generate_tles(family, 2500, now, seed=seed * 101 + i, norad_base=200000 + 20000 * i)
    batch = SatelliteBatch(candidates)
    lats = np.array([s.location.latitude_deg for s in ground_stations])
    lons = np.array([s.location.longitude_deg for s in ground_stations])
    alts = np.array([s.location.altitude_m for s in ground_stations])
    min_el = np.array([s.min_elevation_deg for s in ground_stations])
    table = find_passes(batch, lats, lons, alts, now, now + timedelta(seconds=within_s[1] + 600), min_el, step_s=30.0)
    passes = table.to_list()
    chosen: list[SatelliteTarget] = []
    soon: dict[str, tuple[str, datetime]] = {}
    # Short passes starting soon first; if none exists today, accept later or longer ones.
    for aos_limit_s, max_duration_s in ((within_s[1], 120.0), (within_s[1] * 2, 240.0), (within_s[1] * 4, 600.0)):
        _pick(
            ground_stations,
            passes,
            candidates,
            len(fleet),
            now,
            (within_s[0], aos_limit_s),
            max_duration_s,
            chosen,
            soon,
        )
        if chosen:
            break
    return chosen, soon


# Shortest "soon" pass the demo picks: the scheduler drops passes under its default `min_pass_s` (60 s) as
# TOO_SHORT, and a pass already in progress when the first plan is made is clipped to the plan's start; 45 s passes
# were picked before and silently never scheduled (a satellite "over gs-tokyo in 90 s" assigned elsewhere only).
_MIN_SOON_PASS_S = 90.0


def _pick(
    ground_stations: list[Station],
    passes: list[Any],
    candidates: list[Any],
    n_fleet: int,
    now: datetime,
    aos_within_s: tuple[float, float],
    max_duration_s: float,
    chosen: list[SatelliteTarget],
    soon: dict[str, tuple[str, datetime]],
) -> None:
    used: set[int] = set()
    margin = timedelta(seconds=120)

    def free(p: Any) -> bool:
        # No fleet or already chosen satellite over this station, and this satellite over no other station.
        lo, hi = p.aos - margin, p.los + margin
        for q in passes:
            if q.sat_index == p.sat_index:
                if q.station_index != p.station_index and q.aos < hi and lo < q.los:
                    return False
            elif (
                (q.sat_index < n_fleet or q.sat_index in used)
                and q.station_index == p.station_index
                and q.aos < hi
                and lo < q.los
            ):
                return False
        return True

    for station_index, station in enumerate(ground_stations):
        options = [
            p
            for p in passes
            if p.station_index == station_index
            and p.sat_index >= n_fleet
            and p.sat_index not in used
            and aos_within_s[0] <= (p.aos - now).total_seconds() <= aos_within_s[1]
            and _MIN_SOON_PASS_S <= (p.los - p.aos).total_seconds() <= max_duration_s
        ]
        options = [p for p in options if free(p)]
        if not options:
            continue
        best = min(options, key=lambda p: (p.los - now).total_seconds())
        used.add(best.sat_index)
        tle = candidates[best.sat_index]
        band = station.bands[0]
        target = SatelliteTarget(
            target_id=f"sat-{tle.norad_id}",
            name=f"{tle.name} (over {station.name})",
            norad_id=tle.norad_id,
            tle_line1=tle.line1,
            tle_line2=tle.line2,
            band=band,
            downlink_frequency_hz=_BAND_FREQUENCY_HZ[band],
            priority=10,
            spacecraft=_comfortable(f"sat-{tle.norad_id}"),
        )
        chosen.append(target)
        soon[target.target_id] = (station.station_id, best.aos)
