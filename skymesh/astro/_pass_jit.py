"""Compiled (numba) versions of the hot loops of `skymesh.astro._pass_kernels`: the grid scan at stations without a
horizon mask, the Newton solver of AOS/LOS and the secant solver of TCA.

Optional: `_pass_kernels.compiled_kernels()` imports this module only when numba is importable (the `scheduler`
extra), and the numpy code in `_pass_kernels` is the fallback. Each function here runs the numpy path's algorithm
item by item (same first guesses, steps, safeguards and stopping rules) instead of array by array, so the
numpy temporaries and gathers over arrays larger than the cache go away; the results agree with the numpy path
to rounding (numpy's vectorised sin/cos and float32 grid differ from libm's and float64 in the last bits), which
tests/astro/test_pass_jit.py checks pass by pass.

`cache=True`: the machine code is written next to this file (__pycache__) on the first call and loaded from
there afterwards (compiling all kernels takes seconds, loading them a fraction of one).

Runtime imports: numpy and numba only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]
Coefs = tuple[F64, ...]  # the 18 Hermite coefficient arrays of a GridBlock: (p0, m0, q0, c3, c4, c5) for x, y, z

_F = TypeVar("_F", bound=Callable[..., Any])

# Same constants as `_pass_kernels` (not imported from there: that module imports this one).
_GMST_RATE_RAD_S = 2.0 * math.pi / 86400.0 * (1.0 + 8_640_184.812866 / (36_525.0 * 86400.0))
_EARTH_ROTATION_RAD_S = 7.292115146706979e-5


def _jit(f: _F) -> _F:
    # error_model="numpy": a division by zero gives inf / nan as in the numpy path instead of raising.
    return cast(_F, numba.njit(cache=True, error_model="numpy")(f))


@_jit
def _geometry(
    cf: Coefs,
    n_nodes: int,
    t0_s: float,
    node_s: float,
    theta0: float,
    site: F64,
    up: F64,
    east: F64,
    north: F64,
    n: int,
    s: int,
    t: float,
) -> tuple[float, float, float, float]:
    """sin(elevation), its rate (1/s) and the azimuth's east and north components of one item: the formulas of
    `GridBlock._geometry`, in the same order."""
    u = (t - t0_s) / node_s
    k = min(max(int(u), 0), n_nodes - 2)
    x = u - k
    i0 = n * n_nodes + k
    px = cf[0][i0] + x * (cf[1][i0] + x * (cf[2][i0] + x * (cf[3][i0] + x * (cf[4][i0] + x * cf[5][i0]))))
    py = cf[6][i0] + x * (cf[7][i0] + x * (cf[8][i0] + x * (cf[9][i0] + x * (cf[10][i0] + x * cf[11][i0]))))
    pz = cf[12][i0] + x * (cf[13][i0] + x * (cf[14][i0] + x * (cf[15][i0] + x * (cf[16][i0] + x * cf[17][i0]))))
    theta = theta0 + _GMST_RATE_RAD_S * t
    c, sn = math.cos(theta), math.sin(theta)
    xe = c * px + sn * py
    ye = c * py - sn * px
    dx = xe - site[s, 0]
    dy = ye - site[s, 1]
    dz = pz - site[s, 2]
    ux, uy, uz = up[s, 0], up[s, 1], up[s, 2]
    rho = math.sqrt(dx * dx + dy * dy + dz * dz)
    ue = ux * dx + uy * dy + uz * dz
    sin_el = ue / rho
    wx = (
        cf[1][i0] + x * (2.0 * cf[2][i0] + x * (3.0 * cf[3][i0] + x * (4.0 * cf[4][i0] + 5.0 * x * cf[5][i0])))
    ) / node_s
    wy = (
        cf[7][i0] + x * (2.0 * cf[8][i0] + x * (3.0 * cf[9][i0] + x * (4.0 * cf[10][i0] + 5.0 * x * cf[11][i0])))
    ) / node_s
    wz = (
        cf[13][i0] + x * (2.0 * cf[14][i0] + x * (3.0 * cf[15][i0] + x * (4.0 * cf[16][i0] + 5.0 * x * cf[17][i0])))
    ) / node_s
    vxe = c * wx + sn * wy + _EARTH_ROTATION_RAD_S * ye
    vye = c * wy - sn * wx - _EARTH_ROTATION_RAD_S * xe
    uv = ux * vxe + uy * vye + uz * wz
    dv = dx * vxe + dy * vye + dz * wz
    dsin = (uv - sin_el * dv / rho) / rho
    e = east[s, 0] * dx + east[s, 1] * dy
    nn = north[s, 0] * dx + north[s, 1] * dy + north[s, 2] * dz
    return sin_el, dsin, e, nn


@_jit
def newton_crossings(
    cf: Coefs,
    n_nodes: int,
    t0_s: float,
    node_s: float,
    theta0: float,
    site: F64,
    up: F64,
    east: F64,
    north: F64,
    sin_min: F64,
    n: I64,
    s: I64,
    a: F64,
    b: F64,
    fa: F64,
    fb: F64,
    tol_s: float,
    result: F64,
    east_res: F64,
    north_res: F64,
    newton: B,
) -> None:
    """`_pass_kernels._crossings`'s Newton loop for items without a horizon mask whose bracket holds a sign change
    (both ends non-zero); writes `result`, the last evaluation's azimuth components (NaN after a single one) and
    whether the item ended on a Newton step."""
    for i in range(n.size):
        ai, bi, fai, fbi = a[i], b[i], fa[i], fb[i]
        x = (ai * fbi - bi * fai) / ((fbi - fai) if fbi != fai else 1.0)
        ni, si = n[i], s[i]
        for it in range(40):
            sin_a, df, e, nn = _geometry(cf, n_nodes, t0_s, node_s, theta0, site, up, east, north, ni, si, x)
            f = sin_a - sin_min[si]
            result[i] = x
            if np.sign(f) == np.sign(fai):
                ai, fai = x, f
            else:
                bi = x
            step = f / (df if df != 0.0 else np.inf)
            nxt = x - step
            if not (nxt > ai and nxt < bi and math.isfinite(nxt)):
                nxt = 0.5 * (ai + bi)
            east_res[i] = e if it > 0 else np.nan
            north_res[i] = nn if it > 0 else np.nan
            x = nxt
            if abs(step) < tol_s or f == 0.0 or not math.isfinite(f) or bi - ai < tol_s:
                result[i] = nxt
                newton[i] = True
                break


@_jit
def secant_maxima(
    cf: Coefs,
    n_nodes: int,
    t0_s: float,
    node_s: float,
    theta0: float,
    site: F64,
    up: F64,
    east: F64,
    north: F64,
    n: I64,
    s: I64,
    t_mid: F64,
    g_prev: F64,
    g_mid: F64,
    g_next: F64,
    h: float,
    tol_s: float,
    result: F64,
    x_old: F64,
    d_old: F64,
    sin_old: F64,
    east_old: F64,
    north_old: F64,
) -> None:
    """`_pass_kernels.solve_maxima`'s secant loop on d sin(el)/dt, item by item; writes the result and the last
    evaluation (time, rate, sin(elevation), azimuth components; NaN where only one evaluation was made)."""
    for i in range(n.size):
        ni, si = n[i], s[i]
        a = t_mid[i] - h
        b = a + 2.0 * h
        curv = g_prev[i] - 2.0 * g_mid[i] + g_next[i]
        safe = curv if curv < -1e-12 else -1e-12
        x = t_mid[i] + h * min(max(0.5 * (g_prev[i] - g_next[i]) / safe, -1.0), 1.0)
        slope = safe / (h * h)
        xo, do = np.nan, np.nan
        result[i] = x
        for it in range(30):
            sin_a, d, e, nn = _geometry(cf, n_nodes, t0_s, node_s, theta0, site, up, east, north, ni, si, x)
            sin_old[i] = sin_a
            east_old[i] = e if it > 0 else np.nan
            north_old[i] = nn if it > 0 else np.nan
            result[i] = x
            if d > 0.0:
                a = x
            else:
                b = x
            sec = (d - do) / (x - xo)
            k = sec if (math.isfinite(sec) and sec < 0.0) else slope
            step = -d / k
            nxt = x + step
            if not (nxt > a and nxt < b and math.isfinite(nxt)):
                nxt = 0.5 * (a + b)
            xo, do = x, d
            xa = x
            x = nxt
            if abs(step) < tol_s or abs(d * step) < 1e-9 or not math.isfinite(d) or b - a < tol_s:
                result[i] = nxt if math.isfinite(nxt) else xa
                break
        x_old[i] = xo
        d_old[i] = do


@_jit
def _room(arr: Any, used: int, need: int) -> Any:
    """`arr` with room for `need` more rows after the first `used` (grown geometrically: copies stay linear)."""
    if arr.shape[0] - used >= need:
        return arr
    out = np.empty((max(2 * arr.shape[0], used + need), arr.shape[1]), dtype=arr.dtype)
    out[:used] = arr[:used]
    return out


@_jit
def scan_unmasked(
    cf: Coefs,
    n_nodes: int,
    stride: int,
    nc: int,
    n_times: int,
    cos_t: F64,
    sin_t: F64,
    up: F64,
    site: F64,
    sin_min: F64,
    near_sin: F64,
) -> tuple[I64, F64, I64, F64, I64]:
    """The grid scan of `_pass_kernels.scan_grid` at stations without a horizon mask, fused: sin(elevation) -
    sin(min elevation) of every (satellite, time, station) one time row at a time, never stored whole, for the
    block's first `nc` satellites at `n_times` grid points; the positions are `GridBlock.grid_positions`'s (the
    Hermite polynomials `cf` between nodes `stride` grid steps apart), evaluated here instead of stored. Emits the
    sign changes, the sampled maxima above -near_sin, and the pairs up at every sample.
    `up`, `site`: (S, 3) Earth-fixed up vectors and positions (km) of the stations.

    Returns crossings (m, 3: satellite, k, station; between samples k and k + 1), their (m, 2) values at k and
    k + 1, maxima (q, 3: satellite, k, station), their (q, 3) values at k - 1, k, k + 1, and the (u, 2) pairs that
    are up throughout. Values are float32 (returned as float64) like the numpy path's: they only bracket events;
    the difference r - p is taken before squaring, so they are accurate to float32's 1e-7 (measured 25 % faster
    than float64).
    """
    n_sta = up.shape[0]
    cross = np.empty((4096, 3), dtype=np.int64)
    cross_g = np.empty((4096, 2), dtype=np.float64)
    maxi = np.empty((4096, 3), dtype=np.int64)
    maxi_g = np.empty((4096, 3), dtype=np.float64)
    ups = np.empty((4096, 2), dtype=np.int64)
    n_cross = n_max = n_up = 0
    # Station terms as separate contiguous arrays, so that the loop over stations vectorises.
    f32 = np.float32
    ux, uy, uz = up[:, 0].astype(f32), up[:, 1].astype(f32), up[:, 2].astype(f32)
    sx, sy, sz = site[:, 0].astype(f32), site[:, 1].astype(f32), site[:, 2].astype(f32)
    smin = sin_min.astype(f32)
    neg_near = (-near_sin).astype(f32)
    broken = f32(-2.0)
    zero = f32(0.0)
    flag = np.empty(n_sta, dtype=np.uint8)  # bit 0: sign change from k - 1 to k; bit 1: maximum at k - 1
    first_up = np.empty(n_sta, dtype=np.bool_)  # up at the first sample
    n_cross_at = np.empty(n_sta, dtype=np.int64)  # sign changes so far: up throughout = first_up and none
    g = np.zeros((3, n_sta), dtype=f32)  # the last three samples' values, row k % 3 for sample k
    per_sat = max(n_times - 1, 1) * n_sta  # at most this many events of each kind per satellite
    for n in range(nc):
        # Room for one satellite's events before its loops: an array reassigned inside the hot loop costs
        # reference counting on every sample (measured 20x slower).
        cross = _room(cross, n_cross, per_sat)
        cross_g = _room(cross_g, n_cross, per_sat)
        maxi = _room(maxi, n_max, per_sat)
        maxi_g = _room(maxi_g, n_max, per_sat)
        ups = _room(ups, n_up, n_sta)
        for k in range(n_times):
            i0 = n * n_nodes + k // stride
            x = (k % stride) / stride
            if x == 0.0:
                rx, ry, rz = cf[0][i0], cf[6][i0], cf[12][i0]
            else:
                rx = cf[0][i0] + x * (cf[1][i0] + x * (cf[2][i0] + x * (cf[3][i0] + x * (cf[4][i0] + x * cf[5][i0]))))
                ry = cf[6][i0] + x * (cf[7][i0] + x * (cf[8][i0] + x * (cf[9][i0] + x * (cf[10][i0] + x * cf[11][i0]))))
                rz = cf[12][i0] + x * (
                    cf[13][i0] + x * (cf[14][i0] + x * (cf[15][i0] + x * (cf[16][i0] + x * cf[17][i0])))
                )
            xe = f32(cos_t[k] * rx + sin_t[k] * ry)
            ye = f32(-sin_t[k] * rx + cos_t[k] * ry)
            zt = f32(rz)
            # Rows k, k - 1, k - 2 of a ring of three: the values at sample k and the flags of its neighbours in one
            # loop without branches, which vectorises (branches on the neighbours' comparisons, which go either
            # way at random, were measured 3x slower); then the few flagged items.
            gk, gp, gq = g[k % 3], g[(k + 2) % 3], g[(k + 1) % 3]
            hit = False
            for j in range(n_sta):
                dx, dy, dz = xe - sx[j], ye - sy[j], zt - sz[j]
                v = (ux[j] * dx + uy[j] * dy + uz[j] * dz) / np.sqrt(dx * dx + dy * dy + dz * dz) - smin[j]
                v = v if v == v else broken  # a decayed or broken satellite (NaN) is never visible
                gk[j] = v
                c = (gp[j] >= zero) != (v >= zero)
                m = (gp[j] > neg_near[j]) & (gp[j] > v) & (gp[j] >= gq[j])
                f = np.uint8(c) | (np.uint8(m) << np.uint8(1))
                flag[j] = f
                hit |= f != 0
            if k == 0:
                for j in range(n_sta):
                    first_up[j] = gk[j] >= zero
                    n_cross_at[j] = 0
                continue
            if not hit:
                continue
            for j in range(n_sta):
                f = flag[j]
                if f == 0:
                    continue
                if f & 1:
                    cross[n_cross, 0], cross[n_cross, 1], cross[n_cross, 2] = n, k - 1, j
                    cross_g[n_cross, 0], cross_g[n_cross, 1] = gp[j], gk[j]
                    n_cross += 1
                    n_cross_at[j] += 1
                if f & 2 and k >= 2:
                    maxi[n_max, 0], maxi[n_max, 1], maxi[n_max, 2] = n, k - 1, j
                    maxi_g[n_max, 0], maxi_g[n_max, 1], maxi_g[n_max, 2] = gq[j], gp[j], gk[j]
                    n_max += 1
        for j in range(n_sta):
            if first_up[j] and n_cross_at[j] == 0:
                ups[n_up, 0], ups[n_up, 1] = n, j
                n_up += 1
    return cross[:n_cross], cross_g[:n_cross], maxi[:n_max], maxi_g[:n_max], ups[:n_up]
