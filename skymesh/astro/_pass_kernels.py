"""Numerical kernels of `skymesh.astro.passes`: station geometry, the grid scan and the vectorised solvers.

Private: `passes.find_passes` is the API. Everything here works on arrays of items (satellite in block, station,
time) at once; see the `passes` module docstring for the algorithm and its precision.

Runtime imports: numpy and skymesh only; numba where it is importable (`compiled_kernels`).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np
from numpy.typing import ArrayLike, NDArray

from skymesh.astro._mask_tables import MASK_TABLE_STEP_DEG, bin_tables, mask_suspects
from skymesh.astro.frames import SECONDS_PER_DAY, enu_basis, geodetic_to_ecef
from skymesh.astro.propagate import teme_gravity_km_s2
from skymesh.core.errors import InvalidArgument

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

# Rate of GMST-82 in rad per UTC second (d GMST / dt = 1.00273790935 sidereal s per s).
GMST_RATE_RAD_S = 2.0 * math.pi / SECONDS_PER_DAY * (1.0 + 8_640_184.812866 / (36_525.0 * SECONDS_PER_DAY))
_EARTH_ROTATION_RAD_S = 7.292115146706979e-5
_MASK_TABLE_STEP_DEG = MASK_TABLE_STEP_DEG
# How far below a horizon mask's lowest point a sampled elevation may be and still rise above it before the next
# grid point (60 s grid, LEO): the same margin as for hidden maxima.
_DIP_MARGIN_DEG = 5.0
_BLAS_SINGLE_THREAD_MNK = 262_144  # OpenBLAS: SMP_THRESHOLD_MIN (65536) * GEMM_MULTITHREAD_THRESHOLD (4)
_ROOT_TOL_S = 1e-2
_ITEMS_PER_PIECE = 8192
_TCA_TOL_S = 5e-2


# ---------------------------------------------------------------------------------------------------- compiled


@functools.cache
def compiled_kernels() -> ModuleType | None:
    """`skymesh.astro._pass_jit` (numba kernels of the scan and the solvers), or None where numba is not
    importable or SKYMESH_NO_NUMBA is set to a non-empty value other than 0: then the numpy code here runs.

    Imported on first use, not with this module: numba takes about half a second to import.
    """
    if os.environ.get("SKYMESH_NO_NUMBA", "") not in ("", "0"):
        return None
    try:
        from skymesh.astro import _pass_jit
    except ImportError:
        return None
    return _pass_jit


# ---------------------------------------------------------------------------------------------------- horizon


@dataclass(frozen=True)
class HorizonMask:
    """Obstruction elevation as a function of azimuth, linearly interpolated and periodic in azimuth.

    `azimuth_deg` strictly increasing in [0, 360); `elevation_deg` the same length, in -90..90.
    """

    azimuth_deg: tuple[float, ...]
    elevation_deg: tuple[float, ...]

    def __post_init__(self) -> None:
        az = np.asarray(self.azimuth_deg, dtype=np.float64)
        el = np.asarray(self.elevation_deg, dtype=np.float64)
        if az.ndim != 1 or az.size == 0 or az.shape != el.shape:
            raise InvalidArgument(
                "azimuth and elevation lists must be non-empty and equally long", field="horizon_mask"
            )
        if np.any(~np.isfinite(az)) or np.any(az < 0.0) or np.any(az >= 360.0) or np.any(np.diff(az) <= 0.0):
            raise InvalidArgument("azimuths must be strictly increasing within [0, 360)", field="horizon_mask")
        if np.any(~np.isfinite(el)) or np.any(np.abs(el) > 90.0):
            raise InvalidArgument("mask elevations must be within -90..90 deg", field="horizon_mask")

    def elevation_at(self, azimuth_deg: ArrayLike) -> F64:
        az = np.asarray(azimuth_deg, dtype=np.float64) % 360.0
        return np.asarray(
            np.interp(az, np.asarray(self.azimuth_deg), np.asarray(self.elevation_deg), period=360.0),
            dtype=np.float64,
        )


# ---------------------------------------------------------------------------------------------------- stations


@dataclass(frozen=True)
class Stations:
    site_km: F64  # (S, 3)
    east: F64
    north: F64
    up: F64
    up_dot_site: F64  # (S,)
    site_sq: F64  # (S,)
    sin_min: F64  # (S,) sin(min elevation)
    min_deg: F64
    mask_row: I64  # (S,) row in mask_table_deg, -1 when the station has no horizon mask
    mask_table_deg: F64  # (M, 360 / step) effective mask (max of min elevation and horizon) on a uniform grid
    max_mask_deg: F64  # (S,) highest effective mask
    # (S,) sin of the lowest effective mask less a margin: below it no pass through a dip of the mask can hide
    # between grid points (stations without a mask: 2, never)
    sin_floor_near: F64
    # Sparse tables of the mask's lowest and highest value per 1-degree bin, over two turns (level, row, 720): the
    # range of the mask over any azimuth interval in two lookups (`mask_range_deg`).
    mask_bin_min: F64
    mask_bin_max: F64


def prepare_stations(
    lat_deg: ArrayLike,
    lon_deg: ArrayLike,
    alt_m: ArrayLike,
    min_elevation_deg: float | ArrayLike,
    horizon_masks: Sequence[HorizonMask | tuple[ArrayLike, ArrayLike] | None] | None,
) -> Stations:
    lat = np.atleast_1d(np.asarray(lat_deg, dtype=np.float64))
    lon = np.atleast_1d(np.asarray(lon_deg, dtype=np.float64))
    alt = np.atleast_1d(np.asarray(alt_m, dtype=np.float64))
    if lat.ndim != 1 or lat.shape != lon.shape or lat.shape != alt.shape or lat.size == 0:
        raise InvalidArgument(
            "station latitude, longitude and altitude must be equal-length 1-D arrays", field="stations"
        )
    n_sta = lat.size
    site = geodetic_to_ecef(lat, lon, alt)
    east, north, up = enu_basis(lat, lon)
    min_deg = np.broadcast_to(np.asarray(min_elevation_deg, dtype=np.float64), (n_sta,)).copy()
    if np.any(~np.isfinite(min_deg)) or np.any(np.abs(min_deg) > 90.0):
        raise InvalidArgument("minimum elevation must be within -90..90 deg", field="min_elevation_deg")
    mask_row = np.full(n_sta, -1, dtype=np.int64)
    rows: list[F64] = []
    grid_az = np.arange(0.0, 360.0, _MASK_TABLE_STEP_DEG)
    if horizon_masks is not None:
        if len(horizon_masks) != n_sta:
            raise InvalidArgument("need one horizon mask (or None) per station", field="horizon_masks")
        for s, mask in enumerate(horizon_masks):
            if mask is None:
                continue
            hm = (
                mask
                if isinstance(mask, HorizonMask)
                else HorizonMask(tuple(float(a) for a in np.ravel(mask[0])), tuple(float(e) for e in np.ravel(mask[1])))
            )
            mask_row[s] = len(rows)
            rows.append(np.maximum(hm.elevation_at(grid_az), min_deg[s]))
    table = np.stack(rows) if rows else np.zeros((0, grid_az.size))
    max_mask = min_deg.copy()
    floor_near = np.full(n_sta, 2.0)
    for row_s in np.nonzero(mask_row >= 0)[0]:
        max_mask[row_s] = float(table[mask_row[row_s]].max())
        floor = float(table[mask_row[row_s]].min())
        floor_near[row_s] = math.sin(math.radians(max(-90.0, floor - max(_DIP_MARGIN_DEG, 0.2 * abs(floor)))))
    return Stations(
        site_km=site,
        east=east,
        north=north,
        up=up,
        up_dot_site=np.einsum("sk,sk->s", up, site),
        site_sq=np.einsum("sk,sk->s", site, site),
        sin_min=np.sin(np.radians(min_deg)),
        min_deg=min_deg,
        mask_row=mask_row,
        mask_table_deg=table,
        max_mask_deg=max_mask,
        sin_floor_near=floor_near,
        **bin_tables(table),
    )


def mask_deg(st: Stations, s: I64, az_deg: F64) -> F64:
    """Effective mask elevation for stations `s` at azimuths `az_deg` (items of equal length)."""
    out = st.min_deg[s].copy()
    rows = st.mask_row[s]
    has = rows >= 0
    if has.any():
        # NaN azimuths (a decayed satellite's) read the table at 0 deg; their elevation is NaN, never visible.
        az = az_deg[has]
        x = (np.where(np.isfinite(az), az, 0.0) % 360.0) / _MASK_TABLE_STEP_DEG
        i0 = np.floor(x).astype(np.int64) % st.mask_table_deg.shape[1]
        i1 = (i0 + 1) % st.mask_table_deg.shape[1]
        f = x - np.floor(x)
        tab = st.mask_table_deg
        out[has] = tab[rows[has], i0] * (1.0 - f) + tab[rows[has], i1] * f
    return out


# ---------------------------------------------------------------------------------------------------- geometry


def azimuth_deg(east: F64, north: F64) -> F64:
    """Azimuth (deg, 0..360, from north through east) of a vector's east and north components."""
    return np.asarray(np.degrees(np.arctan2(east, north)) % 360.0, dtype=np.float64)


class GridBlock:
    """SGP4 states of a block of satellites at nodes every `stride` grid steps, and the geometry of any
    (sat, station, time) item.

    Between nodes the state is the quintic Hermite polynomial through the SGP4 positions and velocities and the
    J2 gravity at both nodes (`propagate.teme_gravity_km_s2`): about a metre off SGP4 for nodes 240 s apart in LEO
    (`propagate.node_step_s`), so SGP4 runs on a quarter of the grid. States are kept as 1-D component arrays:
    gathering from them is several times faster than gathering rows.
    """

    def __init__(
        self,
        r: F64,
        v: F64,
        t0_s: float,
        step_s: float,
        stride: int,
        theta0: float,
        st: Stations,
        jit: ModuleType | None = None,
    ) -> None:
        node_s = step_s * stride
        a = teme_gravity_km_s2(r)
        self.n_nodes = r.shape[1]
        # Per node interval, p(x) = p0 + x (m0 + x (q0 + x (c3 + x (c4 + x c5)))), x in [0, 1], with m = velocity
        # * node step and q = acceleration * node step^2 / 2.
        self.coef: list[tuple[F64, F64, F64, F64, F64, F64]] = []
        for i in range(3):
            p0 = np.ascontiguousarray(r[..., i]).reshape(-1)
            m0 = np.ascontiguousarray(v[..., i]).reshape(-1) * node_s
            a0 = np.ascontiguousarray(a[..., i]).reshape(-1) * (node_s * node_s)
            p1, m1, a1 = (np.concatenate([x[1:], x[-1:]]) for x in (p0, m0, a0))
            big_p = p1 - p0 - m0 - 0.5 * a0
            big_v = m1 - m0 - a0
            big_a = a1 - a0
            c3 = 10.0 * big_p - 4.0 * big_v + 0.5 * big_a
            c4 = -15.0 * big_p + 7.0 * big_v - big_a
            c5 = 6.0 * big_p - 3.0 * big_v + 0.5 * big_a
            self.coef.append((p0, m0, 0.5 * a0, c3, c4, c5))
        self.rx = self.coef[0][0]
        self.t0_s = t0_s
        self.step_s = step_s
        self.stride = stride
        self.node_s = node_s
        self.theta0 = theta0
        self.st = st
        self.site = [np.ascontiguousarray(st.site_km[:, i]) for i in range(3)]
        self.up = [np.ascontiguousarray(st.up[:, i]) for i in range(3)]
        self.east = [np.ascontiguousarray(st.east[:, i]) for i in range(3)]
        self.north = [np.ascontiguousarray(st.north[:, i]) for i in range(3)]
        self.has_errors = bool(np.isnan(self.rx).any())
        # The compiled kernels (`compiled_kernels`), or None for the numpy code.
        self.jit = jit

    def jit_args(self) -> tuple[object, ...]:
        """The block's state and stations as the compiled kernels take them."""
        return (
            tuple(c for comp in self.coef for c in comp),
            self.n_nodes,
            self.t0_s,
            self.node_s,
            self.theta0,
            np.ascontiguousarray(self.st.site_km),
            np.ascontiguousarray(self.st.up),
            np.ascontiguousarray(self.st.east),
            np.ascontiguousarray(self.st.north),
        )

    def grid_positions(self, n_times: int, sats: slice) -> F64:
        """TEME positions (n, n_times, 3) of satellites `sats` of the block at the grid points (every step_s)."""
        n_sat = len(range(*sats.indices(self.rx.size // self.n_nodes)))
        out = np.empty((n_sat, n_times, 3), dtype=np.float64)
        for j in range(self.stride):
            x = j / self.stride
            cols = range(j, n_times, self.stride)
            if not len(cols):
                continue
            nodes = slice(0, len(cols))
            for i, (p0, m0, q0, c3, c4, c5) in enumerate(self.coef):
                shape = (-1, self.n_nodes)
                parts = [c.reshape(shape)[sats, nodes] for c in (p0, m0, q0, c3, c4, c5)]
                out[:, j :: self.stride, i] = (
                    parts[0]
                    if j == 0
                    else parts[0] + x * (parts[1] + x * (parts[2] + x * (parts[3] + x * (parts[4] + x * parts[5]))))
                )
        return out

    def geometry(
        self, n: I64, s: I64, t: F64, *, derivative: bool = False, azimuth: bool = False
    ) -> tuple[F64, F64 | None, F64 | None]:
        """sin(elevation), optionally d sin(elevation)/dt (1/s) and azimuth (deg) of items (n, s, t)."""
        sin_el, dsin, e, nn = self.geometry_raw(n, s, t, derivative=derivative, azimuth=azimuth)
        az = None if e is None or nn is None else azimuth_deg(e, nn)
        return sin_el, dsin, az

    def geometry_raw(
        self, n: I64, s: I64, t: F64, *, derivative: bool = False, azimuth: bool = False
    ) -> tuple[F64, F64 | None, F64 | None, F64 | None]:
        """`geometry` with the azimuth as its east and north components (`azimuth_deg` turns them into degrees):
        solvers keep only the components of their last step and take one arctangent per result."""
        t = np.asarray(t, dtype=np.float64)
        if t.size <= _ITEMS_PER_PIECE:
            return self._geometry(n, s, t, derivative, azimuth)
        # In pieces whose temporaries (some 60 arrays) stay in cache: measured 2x faster than whole arrays.
        sin_el = np.empty(t.size)
        dsin = np.empty(t.size) if derivative else None
        east = np.empty(t.size) if azimuth else None
        north = np.empty(t.size) if azimuth else None
        for a in range(0, t.size, _ITEMS_PER_PIECE):
            b = min(t.size, a + _ITEMS_PER_PIECE)
            sp, dp, ep, np_ = self._geometry(n[a:b], s[a:b], t[a:b], derivative, azimuth)
            sin_el[a:b] = sp
            if dsin is not None and dp is not None:
                dsin[a:b] = dp
            if east is not None and north is not None and ep is not None and np_ is not None:
                east[a:b] = ep
                north[a:b] = np_
        return sin_el, dsin, east, north

    def _geometry(
        self, n: I64, s: I64, t: F64, derivative: bool, azimuth: bool
    ) -> tuple[F64, F64 | None, F64 | None, F64 | None]:
        h = self.node_s
        u = (t - self.t0_s) / h
        k = np.clip(u.astype(np.int64), 0, self.n_nodes - 2)  # u >= 0 inside the grid
        x = u - k
        i0 = n * self.n_nodes + k
        coefs = [tuple(c[i0] for c in comp) for comp in self.coef]
        px, py, pz = (p0 + x * (m0 + x * (q0 + x * (c3 + x * (c4 + x * c5)))) for p0, m0, q0, c3, c4, c5 in coefs)
        theta = self.theta0 + GMST_RATE_RAD_S * t
        c, sn = np.cos(theta), np.sin(theta)
        xe = c * px + sn * py
        ye = c * py - sn * px
        dx = xe - self.site[0][s]
        dy = ye - self.site[1][s]
        dz = pz - self.site[2][s]
        ux, uy, uz = self.up[0][s], self.up[1][s], self.up[2][s]
        rho = np.sqrt(dx * dx + dy * dy + dz * dz)
        ue = ux * dx + uy * dy + uz * dz
        sin_el = ue / rho
        dsin: F64 | None = None
        if derivative:
            wx, wy, wz = (
                (m0 + x * (2.0 * q0 + x * (3.0 * c3 + x * (4.0 * c4 + 5.0 * x * c5)))) / h
                for _, m0, q0, c3, c4, c5 in coefs
            )
            vxe = c * wx + sn * wy + _EARTH_ROTATION_RAD_S * ye
            vye = c * wy - sn * wx - _EARTH_ROTATION_RAD_S * xe
            uv = ux * vxe + uy * vye + uz * wz
            dv = dx * vxe + dy * vye + dz * wz
            dsin = (uv - sin_el * dv / rho) / rho
        if not azimuth:
            return sin_el, dsin, None, None
        e = self.east[0][s] * dx + self.east[1][s] * dy
        nn = self.north[0][s] * dx + self.north[1][s] * dy + self.north[2][s] * dz
        return sin_el, dsin, e, nn

    def visibility_sin_az(self, n: I64, s: I64, t: F64) -> tuple[F64, F64, F64]:
        """Visibility, sin(elevation) and azimuth (deg)."""
        sin_el, _, az = self.geometry(n, s, t, azimuth=True)
        assert az is not None
        return np.asarray(sin_el - np.sin(np.radians(mask_deg(self.st, s, az))), dtype=np.float64), sin_el, az

    def visibility_and_sin(self, n: I64, s: I64, t: F64) -> tuple[F64, F64]:
        """Visibility and sin(elevation)."""
        has_mask = self.st.mask_row[s] >= 0
        sin_el, _, az = self.geometry(n, s, t, azimuth=bool(has_mask.any()))
        if az is None:
            return np.asarray(sin_el - self.st.sin_min[s], dtype=np.float64), sin_el
        return np.asarray(sin_el - np.sin(np.radians(mask_deg(self.st, s, az))), dtype=np.float64), sin_el

    def visibility(self, n: I64, s: I64, t: F64) -> F64:
        """sin(elevation) - sin(effective mask): positive while the satellite is visible."""
        has_mask = self.st.mask_row[s] >= 0
        if not has_mask.any():
            sin_el, _, _ = self.geometry(n, s, t)
            return np.asarray(sin_el - self.st.sin_min[s], dtype=np.float64)
        sin_el, _, az = self.geometry(n, s, t, azimuth=True)
        assert az is not None
        return np.asarray(sin_el - np.sin(np.radians(mask_deg(self.st, s, az))), dtype=np.float64)

    def visibility_and_rate(self, n: I64, s: I64, t: F64) -> tuple[F64, F64]:
        """Visibility and d sin(elevation)/dt (the mask's own slope is left out: Newton needs only a guide)."""
        has_mask = self.st.mask_row[s] >= 0
        sin_el, dsin, az = self.geometry(n, s, t, derivative=True, azimuth=bool(has_mask.any()))
        assert dsin is not None
        if az is None:
            return np.asarray(sin_el - self.st.sin_min[s], dtype=np.float64), dsin
        return np.asarray(sin_el - np.sin(np.radians(mask_deg(self.st, s, az))), dtype=np.float64), dsin

    def elevation_rate(self, n: I64, s: I64, t: F64) -> F64:
        _, dsin, _ = self.geometry(n, s, t, derivative=True)
        assert dsin is not None
        return dsin


def bracketed_root(func: Callable[[NDArray[np.intp], F64], F64], a: F64, b: F64, fa: F64, fb: F64, tol_s: float) -> F64:
    """Roots of func(items, t) bracketed by [a, b] (fa, fb of opposite sign or zero), all items at once.

    Secant steps through the two latest iterates, safeguarded by the bracket: a step that leaves the bracket
    becomes a false-position step, and one that does not halve the bracket every other time becomes a bisection,
    so it converges superlinearly on smooth functions and never leaves [a, b].
    """
    a, b, fa, fb = a.copy(), b.copy(), fa.copy(), fb.copy()
    x = np.where(np.abs(fa) <= np.abs(fb), a, b)
    x[fa == 0.0] = a[fa == 0.0]
    x[fb == 0.0] = b[fb == 0.0]
    active = np.nonzero((fa != 0.0) & (fb != 0.0))[0]
    # Stop once |f| says the root is within tol: f / (chord slope of the first bracket), with a safety factor.
    f_tol = 0.25 * tol_s * np.abs(fb - fa) / np.maximum(b - a, 1e-9)
    x_old, f_old = a.copy(), fa.copy()  # the iterate before the latest
    x_new, f_new = b.copy(), fb.copy()  # the latest iterate
    width_ref = b - a
    for it in range(60):
        if active.size == 0:
            break
        aa, bb, ffa, ffb = a[active], b[active], fa[active], fb[active]
        x0, f0, x1, f1 = x_old[active], f_old[active], x_new[active], f_new[active]
        df = f1 - f0
        c = x1 - f1 * (x1 - x0) / np.where(df != 0.0, df, np.inf)
        regula = (aa * ffb - bb * ffa) / np.where(ffb != ffa, ffb - ffa, np.inf)
        inside = (c > aa) & (c < bb) & np.isfinite(c)
        c = np.where(inside, c, regula)
        if it % 3 == 2:  # slow progress (one end stuck): bisect
            c = np.where(bb - aa > 0.5 * width_ref[active], 0.5 * (aa + bb), c)
            width_ref[active] = bb - aa
        c = np.where((c > aa) & (c < bb), c, 0.5 * (aa + bb))
        fc = func(active, c)
        x[active] = c
        left = np.sign(fc) == np.sign(ffa)
        a[active] = np.where(left, c, aa)
        fa[active] = np.where(left, fc, ffa)
        b[active] = np.where(left, bb, c)
        fb[active] = np.where(left, ffb, fc)
        x_old[active], f_old[active] = x1, f1
        x_new[active], f_new[active] = c, fc
        done = (
            (np.abs(fc) <= f_tol[active])
            | ~np.isfinite(fc)
            | (np.abs(c - x1) < 0.5 * tol_s)
            | (b[active] - a[active] < tol_s)
        )
        active = active[~done]
    return x


@dataclass(frozen=True)
class GridScan:
    """Brackets found on the grid of a block: items (satellite in block, grid index, station)."""

    cross_n: I64
    cross_k: I64  # crossing between grid points k and k + 1
    cross_s: I64
    cross_rise: B
    cross_ga: F64
    cross_gb: F64
    max_n: I64
    max_k: I64  # sampled maximum at grid point k (neighbours k - 1 and k + 1)
    max_s: I64
    max_g: F64
    max_g_prev: F64  # sampled values at k - 1 and k + 1, for a parabolic first guess
    max_g_next: F64
    up_n: I64  # pairs visible at every grid point
    up_s: I64
    # At stations with a horizon mask: samples above the mask's lowest point (less a margin), around which passes
    # there are found by a fine sampling (see `find_passes`): a mask can open or close between grid points.
    dip_n: I64
    dip_k: I64
    dip_s: I64


def _thin_matmul(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    """a (M, 4) @ b (4, S) in row pieces small enough that OpenBLAS stays on one thread.

    OpenBLAS threads a GEMM when m * n * k >= 262144; with an inner size of 4 that happens for tiny products, and
    on a busy machine the threaded call was measured 50x slower (3.5 ms against 65 us for 1443 x 100). einsum
    avoids BLAS but was 2.4x slower than single-threaded BLAS here.
    """
    m, n = a.shape[0], b.shape[1]
    out = np.empty((m, n), dtype=np.float32)
    rows = max(1, (_BLAS_SINGLE_THREAD_MNK // (n * a.shape[1])) - 1)
    for i in range(0, m, rows):
        np.matmul(a[i : i + rows], b, out=out[i : i + rows])
    return out


def scan_grid(
    rc: F64,
    c0: int,
    cos_t: F64,
    sin_t: F64,
    st: Stations,
    near_sin: F64,
    has_errors: bool,
) -> GridScan:
    """Visibility of satellites `rc` (n, T, 3 TEME) on the grid, in float32 and in cache-sized pieces.

    With the compiled kernels and no horizon mask at any station, `scan_block_compiled` does this instead.

    float32 is enough here: the grid only brackets events; every value that matters is recomputed in float64.
    Layout is (satellite, time, station) flattened, so a time step is a stride of S; 1-D `flatnonzero` is used
    because multi-dimensional `nonzero` is several times slower.
    """
    nc, n_times, _ = rc.shape
    n_sta = st.site_km.shape[0]
    grid5 = np.empty((nc, n_times, 5), dtype=np.float32)
    grid5[..., 0] = cos_t * rc[..., 0] + sin_t * rc[..., 1]
    grid5[..., 1] = -sin_t * rc[..., 0] + cos_t * rc[..., 1]
    grid5[..., 2] = rc[..., 2]
    grid5[..., 3] = 1.0
    grid5[..., 4] = np.einsum("nti,nti->nt", rc, rc)
    pts4 = grid5.reshape(-1, 5)[:, :4]
    # Homogeneous coordinates fold the station terms into the matrix products:
    # up . (r - p) = [r, 1] . [up, -up.p];  |r - p|^2 = [r, 1, |r|^2] . [-2p, |p|^2, 1].
    up4 = np.concatenate([st.up, -st.up_dot_site[:, None]], axis=1).astype(np.float32)
    site5 = np.concatenate([-2.0 * st.site_km, st.site_sq[:, None], np.ones((n_sta, 1))], axis=1).astype(np.float32)
    g = _thin_matmul(np.ascontiguousarray(pts4), up4.T)  # (M, S): up . (r - p)
    rho = _thin_matmul(grid5.reshape(-1, 5), site5.T)
    np.sqrt(rho, out=rho)
    g /= rho  # sin(elevation)
    masked = np.nonzero(st.mask_row >= 0)[0]
    if masked.size:
        pts = pts4[:, :3].astype(np.float64)
        e_dot = np.einsum("mk,sk->ms", pts, st.east[masked]) - np.einsum(
            "sk,sk->s", st.east[masked], st.site_km[masked]
        )
        n_dot = np.einsum("mk,sk->ms", pts, st.north[masked]) - np.einsum(
            "sk,sk->s", st.north[masked], st.site_km[masked]
        )
        az = np.degrees(np.arctan2(e_dot, n_dot)) % 360.0
        if has_errors:
            az[np.isnan(az)] = 0.0  # a decayed satellite: its elevation is NaN (never visible, never suspect)
        mask = mask_deg(st, np.broadcast_to(masked, az.shape).ravel(), az.ravel()).reshape(az.shape)
        above_floor = g[:, masked] > st.sin_floor_near[masked].astype(np.float32)[None, :]
        el_deg = np.degrees(np.arcsin(np.clip(g[:, masked].astype(np.float64), -1.0, 1.0)))
        g[:, masked] -= np.sin(np.radians(mask)).astype(np.float32)
        dip_n, dip_k, dip_s = mask_suspects(st, masked, above_floor, el_deg, az, mask, nc, n_times)
        unmasked = np.nonzero(st.mask_row < 0)[0]
        g[:, unmasked] -= st.sin_min[unmasked].astype(np.float32)[None, :]
    else:
        g -= st.sin_min.astype(np.float32)[None, :]
        dip_n = dip_k = dip_s = np.zeros(0, dtype=np.int64)
    if has_errors:
        g[np.isnan(g)] = -2.0  # a decayed or broken satellite is never visible
    gf = g.reshape(-1)
    S = n_sta
    pos = gf >= 0.0
    # Sign changes between time k and k + 1 (not across satellites: k = T - 1 is the last time of one).
    idx = np.flatnonzero(pos[:-S] != pos[S:])
    q = idx // S
    idx = idx[(q % n_times) != n_times - 1]
    rise = pos[idx + S]
    cs = idx % S
    q = idx // S
    ck, cn = q % n_times, q // n_times
    # Sampled local maxima above the mask or close enough below it to hide a short pass: tested on the whole array
    # (rows are times), then only the few maxima are gathered.
    mid = g[1:-1]
    is_max = mid > (-near_sin).astype(np.float32)[None, :]
    is_max &= mid >= g[:-2]
    is_max &= mid > g[2:]
    cand = np.flatnonzero(is_max) + S
    mq = cand // S
    mk_all = mq % n_times
    cand = cand[(mk_all > 0) & (mk_all < n_times - 1)]  # not across satellites
    gm = gf[cand]
    ms = cand % S
    mq = cand // S
    mk, mn = mq % n_times, mq // n_times
    pos3 = pos.reshape(nc, n_times, S)
    un, us = np.nonzero(pos3[:, 0, :])
    if un.size:
        always = pos3[un, :, us].all(axis=1)
        un, us = un[always], us[always]
    return GridScan(
        cross_n=cn.astype(np.int64) + c0,
        cross_k=ck.astype(np.int64),
        cross_s=cs.astype(np.int64),
        cross_rise=rise,
        cross_ga=gf[idx].astype(np.float64),
        cross_gb=gf[idx + S].astype(np.float64),
        max_n=mn.astype(np.int64) + c0,
        max_k=mk.astype(np.int64),
        max_s=ms.astype(np.int64),
        max_g=gm.astype(np.float64),
        max_g_prev=gf[cand - S].astype(np.float64),
        max_g_next=gf[cand + S].astype(np.float64),
        up_n=un.astype(np.int64) + c0,
        up_s=us.astype(np.int64),
        dip_n=np.asarray(dip_n, dtype=np.int64) + c0,
        dip_k=np.asarray(dip_k, dtype=np.int64),
        dip_s=np.asarray(dip_s, dtype=np.int64),
    )


def scan_block_compiled(block: GridBlock, n_times: int, cos_t: F64, sin_t: F64, near_sin: F64) -> GridScan:
    """`scan_grid` of a whole block with the compiled kernel (stations without a horizon mask only): the grid
    positions are evaluated inside it, never stored."""
    assert block.jit is not None and not (block.st.mask_row >= 0).any()
    st = block.st
    cross, cross_g, maxi, maxi_g, ups = block.jit.scan_unmasked(
        tuple(c for comp in block.coef for c in comp),
        block.n_nodes,
        block.stride,
        block.rx.size // block.n_nodes,
        n_times,
        np.ascontiguousarray(np.ravel(cos_t)),
        np.ascontiguousarray(np.ravel(sin_t)),
        np.ascontiguousarray(st.up, dtype=np.float64),
        np.ascontiguousarray(st.site_km, dtype=np.float64),
        np.ascontiguousarray(st.sin_min, dtype=np.float64),
        np.ascontiguousarray(near_sin, dtype=np.float64),
    )
    none = np.zeros(0, dtype=np.int64)
    return GridScan(
        cross_n=cross[:, 0].copy(),
        cross_k=cross[:, 1].copy(),
        cross_s=cross[:, 2].copy(),
        cross_rise=cross_g[:, 1] >= 0.0,
        cross_ga=cross_g[:, 0].copy(),
        cross_gb=cross_g[:, 1].copy(),
        max_n=maxi[:, 0].copy(),
        max_k=maxi[:, 1].copy(),
        max_s=maxi[:, 2].copy(),
        max_g=maxi_g[:, 1].copy(),
        max_g_prev=maxi_g[:, 0].copy(),
        max_g_next=maxi_g[:, 2].copy(),
        up_n=ups[:, 0].copy(),
        up_s=ups[:, 1].copy(),
        dip_n=none,
        dip_k=none,
        dip_s=none,
    )


def solve_crossings(block: GridBlock, n: I64, s: I64, a: F64, b: F64, fa: F64, fb: F64) -> F64:
    """Times where visibility changes sign inside [a, b]; brackets touching a broken state keep the grid time.

    Newton steps with the analytic rate of sin(elevation), from a false-position start, safeguarded by the
    bracket (a step that leaves it bisects): two evaluations per event in the usual case.
    """
    return _crossings(block, n, s, a, b, fa, fb, look=False)[0]


def solve_crossings_look(block: GridBlock, n: I64, s: I64, a: F64, b: F64, fa: F64, fb: F64) -> tuple[F64, F64, F64]:
    """`solve_crossings`, with sin(elevation) and azimuth (deg) at each time.

    They come from the Newton iterations: sin(elevation) is the minimum elevation's, which the last step (under
    `_ROOT_TOL_S`) reached; the azimuth is the last evaluation's (at AOS/LOS it moves by well under 0.01 deg in that
    step). Items that did not end on a Newton step (masked stations, broken brackets) are evaluated once more.
    """
    t, sin_el, az = _crossings(block, n, s, a, b, fa, fb, look=True)
    assert sin_el is not None and az is not None
    return t, sin_el, az


def _crossings(
    block: GridBlock, n: I64, s: I64, a: F64, b: F64, fa: F64, fb: F64, *, look: bool
) -> tuple[F64, F64 | None, F64 | None]:
    if n.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    a = np.asarray(a, dtype=np.float64).copy()
    b = np.asarray(b, dtype=np.float64).copy()
    if block.has_errors:
        # Next to a decayed or broken state the interpolation is NaN: keep the grid time there.
        fa = block.visibility(n, s, a)
        fb = block.visibility(n, s, b)
    fa = np.asarray(fa, dtype=np.float64).copy()
    fb = np.asarray(fb, dtype=np.float64).copy()
    broken = ~(np.isfinite(fa) & np.isfinite(fb)) | ((fa > 0.0) & (fb > 0.0)) | ((fa < 0.0) & (fb < 0.0))
    result = np.where(np.abs(np.nan_to_num(fa, nan=9.0)) <= np.abs(np.nan_to_num(fb, nan=9.0)), a, b)
    # At a station with a horizon mask the mask's slope can dominate the rate: solve those without derivatives.
    masked = block.st.mask_row[s] >= 0
    use_secant = np.nonzero(~broken & masked)[0]
    if use_secant.size:
        nm, sm = n[use_secant], s[use_secant]
        result[use_secant] = bracketed_root(
            lambda idx, t: block.visibility(nm[idx], sm[idx], t),
            a[use_secant],
            b[use_secant],
            fa[use_secant],
            fb[use_secant],
            _ROOT_TOL_S,
        )
    active = np.nonzero(~broken & ~masked & (fa != 0.0) & (fb != 0.0))[0]
    # Look angles from the Newton step that ended each item (see `solve_crossings_look`); the rest are evaluated.
    east_res = np.full(n.size, np.nan) if look else None
    north_res = np.full(n.size, np.nan) if look else None
    newton = np.zeros(n.size, dtype=bool)
    if block.jit is not None and active.size:
        # The same Newton steps, item by item, compiled (`_pass_jit.newton_crossings`).
        res_a = np.empty(active.size)
        east_a = np.empty(active.size)
        north_a = np.empty(active.size)
        newton_a = np.zeros(active.size, dtype=bool)
        block.jit.newton_crossings(
            *block.jit_args(),
            block.st.sin_min,
            n[active],
            s[active],
            a[active],
            b[active],
            fa[active],
            fb[active],
            _ROOT_TOL_S,
            res_a,
            east_a,
            north_a,
            newton_a,
        )
        result[active] = res_a
        newton[active] = newton_a
        if east_res is not None and north_res is not None:
            east_res[active], north_res[active] = east_a, north_a
        active = active[:0]
    x = (a * fb - b * fa) / np.where(fb != fa, fb - fa, 1.0)
    for it in range(40):
        if active.size == 0:
            break
        xa = x[active]
        if look:
            # The azimuth from the second evaluation on: the first (false position) rarely ends an item.
            sin_a, df_opt, e_a, n_a = block.geometry_raw(n[active], s[active], xa, derivative=True, azimuth=it > 0)
            assert df_opt is not None
            df = df_opt
            f = sin_a - block.st.sin_min[s[active]]  # no mask here: masked stations took the secant path
        else:
            f, df = block.visibility_and_rate(n[active], s[active], xa)
        result[active] = xa
        aa, bb = a[active], b[active]
        left = np.sign(f) == np.sign(fa[active])
        aa = np.where(left, xa, aa)
        bb = np.where(left, bb, xa)
        a[active], b[active] = aa, bb
        fa[active] = np.where(left, f, fa[active])
        step = f / np.where(df != 0.0, df, np.inf)
        nxt = xa - step
        nxt = np.where((nxt > aa) & (nxt < bb) & np.isfinite(nxt), nxt, 0.5 * (aa + bb))
        x[active] = nxt
        done = (np.abs(step) < _ROOT_TOL_S) | (f == 0.0) | ~np.isfinite(f) | (bb - aa < _ROOT_TOL_S)
        # The last Newton step is below tolerance: take it (it is inside the bracket).
        fin = active[done]
        result[fin] = nxt[done]
        if east_res is not None and north_res is not None:
            # Stored for every active item (scatters by index are cheaper than gathering the finished ones).
            east_res[active] = np.nan if e_a is None else e_a
            north_res[active] = np.nan if n_a is None else n_a
            newton[fin] = True
        active = active[~done]
    if east_res is None or north_res is None:
        return np.asarray(result, dtype=np.float64), None, None
    # An item that ended on a Newton step sits on its (unmasked) minimum elevation, to within the step's tolerance.
    sin_res = np.where(newton, block.st.sin_min[s], np.nan)
    az_res = azimuth_deg(east_res, north_res)
    again = np.flatnonzero(~np.isfinite(sin_res) | ~np.isfinite(az_res))
    if again.size:
        sin_g, _, az_g = block.geometry(n[again], s[again], result[again], azimuth=True)
        assert az_g is not None
        sin_res[again], az_res[again] = sin_g, az_g
    return np.asarray(result, dtype=np.float64), sin_res, az_res


def solve_maxima(
    block: GridBlock, n: I64, s: I64, t_mid: F64, g_prev: F64, g_mid: F64, g_next: F64
) -> tuple[F64, F64, F64, F64]:
    """Time of maximum elevation within one grid step of `t_mid`, its sin(elevation), visibility and azimuth (deg)
    there.

    Start at the vertex of the parabola through the three samples, then secant steps on d sin(el)/dt (first
    secant slope from the parabola's curvature), safeguarded by [t_mid - h, t_mid + h].
    """
    h = block.step_s
    a = np.asarray(t_mid, dtype=np.float64) - h
    b = a + 2.0 * h
    curv = g_prev - 2.0 * g_mid + g_next  # < 0 at a sampled maximum; sin units per step^2
    safe = np.where(curv < -1e-12, curv, -1e-12)
    x = t_mid + h * np.clip(0.5 * (g_prev - g_next) / safe, -1.0, 1.0)
    slope = safe / (h * h)  # d(rate)/dt of the parabola
    result = x.copy()
    x_old = np.full(x.size, np.nan)
    d_old = np.full(x.size, np.nan)
    sin_old = np.full(x.size, np.nan)
    east_old = np.full(x.size, np.nan)
    north_old = np.full(x.size, np.nan)
    active = np.arange(x.size)
    if block.jit is not None and x.size:
        # The same secant steps, item by item, compiled (`_pass_jit.secant_maxima`).
        block.jit.secant_maxima(
            *block.jit_args(),
            np.asarray(n, dtype=np.int64),
            np.asarray(s, dtype=np.int64),
            np.asarray(t_mid, dtype=np.float64),
            np.asarray(g_prev, dtype=np.float64),
            np.asarray(g_mid, dtype=np.float64),
            np.asarray(g_next, dtype=np.float64),
            h,
            _TCA_TOL_S,
            result,
            x_old,
            d_old,
            sin_old,
            east_old,
            north_old,
        )
        active = active[:0]
    for it in range(30):
        if active.size == 0:
            break
        xa = x[active]
        # The azimuth from the second evaluation on: the first (the parabola's vertex) rarely ends an item.
        sin_a, d_opt, e_a, n_a = block.geometry_raw(n[active], s[active], xa, derivative=True, azimuth=it > 0)
        assert d_opt is not None
        d = d_opt
        sin_old[active] = sin_a
        east_old[active] = np.nan if e_a is None else e_a
        north_old[active] = np.nan if n_a is None else n_a
        result[active] = xa
        aa = np.where(d > 0.0, xa, a[active])
        bb = np.where(d > 0.0, b[active], xa)
        a[active], b[active] = aa, bb
        xo, do = x_old[active], d_old[active]
        sec = (d - do) / (xa - xo)
        use = np.isfinite(sec) & (sec < 0.0)
        k = np.where(use, sec, slope[active])
        step = -d / k
        nxt = xa + step
        nxt = np.where((nxt > aa) & (nxt < bb) & np.isfinite(nxt), nxt, 0.5 * (aa + bb))
        x_old[active], d_old[active] = xa, d
        x[active] = nxt
        # Done when the step is small, or when it would change sin(elevation) by less than 1e-9 (flat tops).
        done = (np.abs(step) < _TCA_TOL_S) | (np.abs(d * step) < 1e-9) | ~np.isfinite(d) | (bb - aa < _TCA_TOL_S)
        result[active[done]] = np.where(np.isfinite(nxt[done]), nxt[done], xa[done])
        active = active[~done]
    # sin(elevation) at the result from the last evaluation, a last step of under 0.1 s before it: off by at most
    # |sin''| dt^2 / 2, about 2e-6 (1e-4 deg) in LEO. Longer last steps, and stations with a horizon mask (whose
    # visibility needs the azimuth), are evaluated again. The azimuth is the last evaluation's: it is off by its
    # rate times that step, which only near the zenith is large, where the azimuth at the TCA is ill-conditioned
    # anyway (it stays between the AOS and LOS azimuths, on the side of the zenith the satellite passes).
    dt = result - x_old
    sin_el = sin_old + d_old * dt
    vis = sin_el - block.st.sin_min[s]
    az = azimuth_deg(east_old, north_old)
    # Near the zenith that small error in sin(elevation) is a large one in elevation (0.001 deg at 89.9 deg), and
    # the azimuth turns fast: passes above 78 deg (a few percent) are evaluated again too.
    again = np.flatnonzero(~(np.abs(dt) <= 0.1) | (block.st.mask_row[s] >= 0) | np.isnan(az) | (sin_el > 0.978))
    if again.size:
        vis[again], sin_el[again], az[again] = block.visibility_sin_az(n[again], s[again], result[again])
    return result, sin_el, np.nan_to_num(vis, nan=-2.0), az
