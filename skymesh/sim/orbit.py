"""Orbits for whole fleets at once: two-body Keplerian elements and SGP4 from TLEs, plus Hermite interpolation.

Every orbit source answers `state(t_s)` for a vector of times (seconds since the scenario epoch) with positions and
velocities of shape (n_sats, n_times, 3) in metres and m/s, in its inertial `frame` ("j2000" for Keplerian
elements, "teme" for SGP4). The engine samples orbits on a coarse grid and uses cubic Hermite interpolation between
samples (sub-metre error at a 60 s grid in LEO) to place eclipse and contact edges to a fraction of a second.

PASEOS propagates Keplerian orbits (pykep, no J2) from a state vector; `KeplerOrbits.from_state` does the same.
Imports numpy, sgp4 and skymesh.astro (Julian dates) only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from skymesh.astro.frames import datetime_to_jd
from skymesh.core.errors import InvalidArgument

__all__ = [
    "MU_EARTH_M3_S2",
    "KeplerOrbits",
    "Orbits",
    "TLEOrbits",
    "hermite_position",
    "walker_constellation",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

# pykep.MU_EARTH, what PASEOS propagates with.
MU_EARTH_M3_S2 = 398600.4418e9


class Orbits(Protocol):
    """A fleet's orbits: n satellites, evaluated at shared times."""

    @property
    def n(self) -> int: ...

    @property
    def frame(self) -> str: ...

    def state(self, t_s: F64) -> tuple[F64, F64]: ...

    def subset(self, index: I64) -> Orbits: ...


@dataclass(frozen=True)
class KeplerOrbits:
    """Two-body orbits; elements are arrays of shape (n,), angles in radians, at `epoch` (t = 0)."""

    a_m: F64
    e: F64
    i_rad: F64
    raan_rad: F64
    argp_rad: F64
    mean_anomaly_rad: F64
    mu_m3_s2: float = MU_EARTH_M3_S2
    frame: str = "j2000"

    def __post_init__(self) -> None:
        if np.any(self.e >= 1.0) or np.any(self.e < 0.0):
            raise InvalidArgument("eccentricity must be in [0, 1)", field="orbit.e")
        if np.any(self.a_m <= 0.0):
            raise InvalidArgument("semi-major axis must be positive", field="orbit.a_m")

    @property
    def n(self) -> int:
        return int(np.size(self.a_m))

    @classmethod
    def from_state(cls, r_m: F64, v_m_s: F64, mu_m3_s2: float = MU_EARTH_M3_S2, frame: str = "j2000") -> KeplerOrbits:
        """Elements from position/velocity (n, 3) at the epoch, like `pykep.planet.keplerian(epoch, r, v, mu)`."""
        r = np.atleast_2d(np.asarray(r_m, dtype=np.float64))
        v = np.atleast_2d(np.asarray(v_m_s, dtype=np.float64))
        rn = np.linalg.norm(r, axis=1)
        h = np.cross(r, v)
        hn = np.linalg.norm(h, axis=1)
        node = np.cross(np.array([0.0, 0.0, 1.0]), h)
        nn = np.linalg.norm(node, axis=1)
        evec = np.cross(v, h) / mu_m3_s2 - r / rn[:, None]
        e = np.linalg.norm(evec, axis=1)
        energy = 0.5 * np.sum(v * v, axis=1) - mu_m3_s2 / rn
        if np.any(energy >= 0):
            raise InvalidArgument("orbit is not bound (hyperbolic or parabolic)", field="orbit.velocity")
        a = -mu_m3_s2 / (2 * energy)
        inc = np.arccos(np.clip(h[:, 2] / hn, -1, 1))
        # Equatorial and circular orbits: choose the x axis / node as reference so angles stay defined.
        eq = nn < 1e-9 * hn
        node_dir = np.where(eq[:, None], np.array([1.0, 0.0, 0.0]), node / np.where(eq, 1.0, nn)[:, None])
        raan = np.where(eq, 0.0, np.arctan2(node_dir[:, 1], node_dir[:, 0]))
        circ = e < 1e-10
        hhat = h / hn[:, None]
        ref = np.where(circ[:, None], node_dir, evec / np.where(circ, 1.0, e)[:, None])
        argp = np.where(
            circ, 0.0, np.arctan2(np.sum(np.cross(node_dir, ref) * hhat, axis=1), np.sum(node_dir * ref, axis=1))
        )
        nu = np.arctan2(np.sum(np.cross(ref, r) * hhat, axis=1), np.sum(ref * r, axis=1))
        ecc_anom = 2 * np.arctan2(np.sqrt(1 - e) * np.sin(nu / 2), np.sqrt(1 + e) * np.cos(nu / 2))
        mean_anom = ecc_anom - e * np.sin(ecc_anom)
        return cls(a, e, inc, np.mod(raan, 2 * np.pi), argp, mean_anom, mu_m3_s2, frame)

    def subset(self, index: I64) -> KeplerOrbits:
        return KeplerOrbits(
            self.a_m[index], self.e[index], self.i_rad[index], self.raan_rad[index],
            self.argp_rad[index], self.mean_anomaly_rad[index], self.mu_m3_s2, self.frame,
        )  # fmt: skip

    def state(self, t_s: F64) -> tuple[F64, F64]:
        t = np.asarray(t_s, dtype=np.float64)[None, :]
        a, e = self.a_m[:, None], self.e[:, None]
        n_mot = np.sqrt(self.mu_m3_s2 / a**3)
        m = self.mean_anomaly_rad[:, None] + n_mot * t
        ecc = m + e * np.sin(m)
        if np.any(self.e > 0):
            for _ in range(8 if np.max(self.e, initial=0.0) < 0.3 else 30):
                step = (ecc - e * np.sin(ecc) - m) / (1 - e * np.cos(ecc))
                ecc = ecc - step
                if float(np.max(np.abs(step), initial=0.0)) < 1e-13:
                    break
        else:
            ecc = m  # circular orbits: eccentric anomaly = mean anomaly
        ce, se = np.cos(ecc), np.sin(ecc)
        b = a * np.sqrt(1 - e * e)
        xp, yp = a * (ce - e), b * se
        rdot = n_mot * a / (1 - e * ce)
        vxp, vyp = -a * se * rdot / a, b * ce * rdot / a
        cw, sw = np.cos(self.argp_rad)[:, None], np.sin(self.argp_rad)[:, None]
        co, so = np.cos(self.raan_rad)[:, None], np.sin(self.raan_rad)[:, None]
        ci, si = np.cos(self.i_rad)[:, None], np.sin(self.i_rad)[:, None]
        p = np.stack([cw * co - sw * so * ci, cw * so + sw * co * ci, sw * si], axis=-1)
        q = np.stack([-sw * co - cw * so * ci, -sw * so + cw * co * ci, cw * si], axis=-1)
        pos = xp[..., None] * p + yp[..., None] * q
        vel = vxp[..., None] * p + vyp[..., None] * q
        return pos, vel


def walker_constellation(
    altitude_m: float,
    inclination_deg: float,
    n_planes: int,
    sats_per_plane: int,
    phasing: int = 0,
    body_radius_m: float = 6_371_000.0,
    argp_deg: float = 0.0,
) -> KeplerOrbits:
    """Walker delta pattern i:T/P/F with circular orbits of radius body_radius + altitude (PASEOS's example uses
    6371 km + altitude, planes evenly over 360 deg of RAAN, satellites evenly in mean anomaly)."""
    if n_planes < 1 or sats_per_plane < 1:
        raise InvalidArgument("need at least one plane and one satellite per plane", field="walker")
    total = n_planes * sats_per_plane
    plane = np.repeat(np.arange(n_planes), sats_per_plane)
    slot = np.tile(np.arange(sats_per_plane), n_planes)
    raan = 2 * np.pi * plane / n_planes
    mean_anom = 2 * np.pi * slot / sats_per_plane + 2 * np.pi * phasing * plane / total
    ones = np.ones(total)
    return KeplerOrbits(
        a_m=ones * (body_radius_m + altitude_m),
        e=np.zeros(total),
        i_rad=ones * np.deg2rad(inclination_deg),
        raan_rad=raan,
        argp_rad=ones * np.deg2rad(argp_deg),
        mean_anomaly_rad=mean_anom,
    )


class TLEOrbits:
    """SGP4 orbits for a fleet of TLEs (sgp4's C++ `SatrecArray`), TEME frame."""

    frame = "teme"

    def __init__(self, tles: Sequence[tuple[str, str]], epoch: datetime) -> None:
        from sgp4.api import Satrec, SatrecArray

        sats = []
        for k, (line1, line2) in enumerate(tles):
            try:
                sats.append(Satrec.twoline2rv(line1, line2))
            except Exception as exc:  # sgp4 raises ValueError and friends on malformed lines
                raise InvalidArgument(f"cannot parse TLE: {exc}", field=f"tles[{k}]") from exc
        self._tles = list(tles)
        self._sats = sats
        self._array = SatrecArray(sats)
        self._epoch = epoch
        self._jd0 = datetime_to_jd(epoch)

    @property
    def n(self) -> int:
        return len(self._sats)

    def subset(self, index: I64) -> TLEOrbits:
        return TLEOrbits([self._tles[int(k)] for k in index], self._epoch)

    def state(self, t_s: F64) -> tuple[F64, F64]:
        t = np.asarray(t_s, dtype=np.float64)
        jd_whole = np.floor(self._jd0) + np.zeros_like(t)
        fr = (self._jd0 - np.floor(self._jd0)) + t / 86400.0
        err, r_km, v_km_s = self._array.sgp4(jd_whole, fr)
        bad = err != 0
        if np.any(bad):
            # decayed or invalid: keep the arrays finite; such satellites read as far away and never in contact
            r_km = np.where(bad[..., None], 1e9, r_km)
            v_km_s = np.where(bad[..., None], 0.0, v_km_s)
        return np.asarray(r_km) * 1000.0, np.asarray(v_km_s) * 1000.0


def hermite_position(p0: F64, v0: F64, p1: F64, v1: F64, h_s: F64, u: F64) -> F64:
    """Cubic Hermite position at fraction u in [0, 1] of an interval of length h_s; arrays broadcast over (..., 3)."""
    u = u[..., None]
    h = h_s[..., None]
    u2, u3 = u * u, u * u * u
    return (2 * u3 - 3 * u2 + 1) * p0 + (u3 - 2 * u2 + u) * h * v0 + (-2 * u3 + 3 * u2) * p1 + (u3 - u2) * h * v1
