"""One chunk of satellites through one run: geometry and edges first, then the event-driven walk over the grid.

Private to `skymesh.sim.engine` (see its docstring for the algorithm). Imports numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from skymesh.astro.frames import gmst_rad
from skymesh.astro.inertial import check_frame, ecef_to_inertial, teme_to_gcrs_matrix
from skymesh.astro.sun import sun_position_km
from skymesh.sim.activities import ActivityChange, FleetState, run_sync
from skymesh.sim.comms import elevation_function, isl_function_m2
from skymesh.sim.eclipse import eclipse_function_m2
from skymesh.sim.events import find_edges
from skymesh.sim.orbit import hermite_position
from skymesh.sim.power import advance_energy_ws, net_power_w
from skymesh.sim.thermal import ThermalCoefficients, advance_temperature_k

if TYPE_CHECKING:
    from skymesh.sim.engine import SimState, Simulation

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

ECLIPSE, CONTACT, ISL, RESTART, FAILURE, SCHEDULE, PROBE, ACTIVITY, SYNC = range(9)
_SLOPE_DT_S = 1e-2  # forward step for the slopes of the edge functions at the knots


class ChunkRun:
    def __init__(
        self,
        sim: Simulation,
        idx: I64,
        knots: F64,
        is_decision: B,
        state: SimState,
        rad: tuple[I64, F64, I64],
        schedule: Sequence[tuple[int, float, int]],
        contact_windows: Sequence[tuple[int, float, float]] | None,
        probes: Sequence[tuple[int, float]],
        soc_floor: F64 | None,
    ) -> None:
        self.sim = sim
        self.cfg = sim.config
        self.idx = idx
        self.lo, self.hi = int(idx[0]), int(idx[-1]) + 1
        self.n = n = idx.size
        self.knots = knots
        self.is_decision = is_decision
        self.forced = len(schedule) > 0
        f = sim.fleet
        sl = slice(self.lo, self.hi)
        self.cap = f.capacity_ws[sl]
        self.charge = f.charge_power_w[sl]
        self.rtg = f.rtg[sl]
        self.has_thermal = f.has_thermal[sl]
        c = f.thermal.subset(idx)
        self.cmat = np.stack([c.sunlit_w, c.body_ir_w_at_surface, c.body_radius_m, c.emission_w_per_k4, c.heat_ratio,
                              c.heat_capacity_j_per_k])  # fmt: skip
        self.all_thermal = bool(np.all(self.has_thermal))
        self.store_cap = f.storage_capacity_bytes[sl]
        self.downlink = f.downlink_rate_bytes_per_s[sl]
        self.relay_rate = f.isl_rate_bytes_per_s[sl]
        self.draw = f.draw_w[sl]
        self.rate = f.data_rate_bytes_per_s[sl]
        self.E = np.array(state.energy_ws[sl], dtype=np.float64)
        self.T = np.where(self.has_thermal, state.temperature_k[sl], np.nan)
        self.D = np.array(state.stored_bytes[sl], dtype=np.float64)
        self.act = np.array(state.activity[sl], dtype=np.int64)
        self.props = sim.custom_properties
        if state.custom.shape[0] == len(self.props):
            self.P = np.array(state.custom[:, sl], dtype=np.float64).reshape(len(self.props), n)
        else:  # a state from before the properties existed: start them at their initial values
            self.P = np.array([[p.initial] * n for p in self.props], dtype=np.float64).reshape(len(self.props), n)
        self.updaters = [(j, p.update) for j, p in enumerate(self.props) if p.update is not None]
        self.station_names = tuple(st.name for st in sim.stations)
        self.contact_st = np.zeros((n, len(sim.stations)), dtype=np.int64)
        self.alive = np.array(state.alive[sl], dtype=np.bool_)
        self.cur = np.full(n, knots[0])
        self.ka = 0
        self.all = np.arange(n, dtype=np.int64)
        self.downlinked = np.zeros(n)
        self.exposure = np.zeros(n)  # bit-seconds of stored data, for the bit-flip model
        self.ecl = np.zeros(n, dtype=np.bool_)
        self.contact = np.zeros(n, dtype=np.int64)
        self.isl = np.zeros(n, dtype=np.int64)
        self.relay = np.zeros(n, dtype=np.int64)  # relays in line of sight
        # directed data flows over fleet links (coupled runs hold the whole fleet, so indices are fleet indices)
        flows = sim.flows
        self.flow_from = np.array([fl[0] for fl in flows], dtype=np.int64)
        self.flow_to = np.array([fl[1] for fl in flows], dtype=np.int64)
        self.flow_pair = np.array([fl[2] for fl in flows], dtype=np.int64)
        rate_all = f.isl_rate_bytes_per_s
        self.flow_rate = np.minimum(rate_all[self.flow_from], rate_all[self.flow_to]) if flows else np.zeros(0)
        self.pair_los = np.zeros(len(sim.config.isl_pairs), dtype=np.bool_)
        self.isl_out = np.zeros(n)
        self.isl_sent = np.zeros(n)
        self.isl_received = np.zeros(n)
        self.constraints = [(k, a.constraint) for k, a in enumerate(sim.activities) if a.constraint is not None]
        self.callbacks = any(a.on_start is not None or a.on_end is not None for a in sim.activities)
        self.floor = None if soc_floor is None else np.asarray(soc_floor, dtype=np.float64)[sl] * self.cap
        self._ev: list[tuple[I64, F64, I64, I64, F64]] = []
        self._log: list[tuple[I64, F64, I64, I64, F64]] = []
        self.probe_id: list[I64] = []
        self.probe_soc: list[F64] = []
        self.probe_stored: list[F64] = []
        self.floor_log: list[tuple[I64, F64, I64]] = []
        self._rad, self._schedule, self._windows, self._probes = rad, schedule, contact_windows, probes

    # -- geometry ----------------------------------------------------------------------------------------------
    def _add(self, sat: I64, t: F64, kind: int, arg: I64 | int, value: F64 | float) -> None:
        m = sat.size
        self._ev.append((sat.astype(np.int64), np.asarray(t, dtype=np.float64), np.full(m, kind, dtype=np.int64),
                         np.broadcast_to(np.asarray(arg, dtype=np.int64), (m,)).copy(),
                         np.broadcast_to(np.asarray(value, dtype=np.float64), (m,)).copy()))  # fmt: skip

    def geometry(self) -> None:
        sim, cfg, knots = self.sim, self.cfg, self.knots
        orbits = sim.orbits if self.n == sim.orbits.n else sim.orbits.subset(self.idx)
        pos, vel = orbits.state(knots)
        self.r_knots = np.sqrt(np.einsum("nki,nki->nk", pos, pos))
        frame = orbits.frame
        jd = sim.jd0 + knots / 86400.0
        sun = sun_position_km(jd, frame) * 1000.0
        hk = np.diff(knots)
        tol = cfg.tolerance_s

        def at(rows: I64, ks: I64, t: F64) -> F64:
            u = (t - knots[ks]) / hk[ks]
            return hermite_position(pos[rows, ks], vel[rows, ks], pos[rows, ks + 1], vel[rows, ks + 1], hk[ks], u)

        def sun_at(ks: I64, t: F64) -> F64:
            u = ((t - knots[ks]) / hk[ks])[:, None]
            return np.asarray(sun[ks] * (1 - u) + sun[ks + 1] * u, dtype=np.float64)

        # slopes at the knots: each function again on states a short step ahead (pos + vel dt, bodies moved too)
        dt = _SLOPE_DT_S
        pos_dt = pos + vel * dt
        sun_dt = sun + np.gradient(sun, knots, axis=0) * dt

        # eclipse: positive while eclipsed
        g = -eclipse_function_m2(pos, sun[None], cfg.eclipse_radius_m)
        slopes = (-eclipse_function_m2(pos_dt, sun_dt[None], cfg.eclipse_radius_m) - g) / dt
        self.ecl = g[:, 0] > 0
        rows, te, rising = find_edges(
            g, slopes, knots, lambda r, k, t: -eclipse_function_m2(at(r, k, t), sun_at(k, t), cfg.eclipse_radius_m),
            tol,
        )  # fmt: skip
        self._add(rows, te, ECLIPSE, 0, rising.astype(np.float64))

        if self._windows is None:
            offset = cfg.earth_rotation_offset_s
            # between knots: Earth's rotation exactly, precession-nutation from the knot (it moves 1e-4" a minute)
            to_frame = teme_to_gcrs_matrix(jd) if check_frame(frame) == "gcrs" else None

            def rotate(v: F64, k: I64, t: F64) -> F64:
                theta = gmst_rad(sim.jd0 + (t + offset) / 86400.0)
                c, s_ = np.cos(theta), np.sin(theta)
                out = np.stack([c * v[0] - s_ * v[1], s_ * v[0] + c * v[1], np.full(t.shape, v[2])], axis=-1)
                return out if to_frame is None else np.einsum("mij,mj->mi", to_frame[k], out)

            for s, st in enumerate(sim.stations):
                ecef, up = st.ecef_m()
                minel = math.radians(st.min_elevation_deg)
                sp = ecef_to_inertial(ecef[None, :], jd, frame, offset)
                su = ecef_to_inertial(up[None, :], jd, frame, offset)
                vis = elevation_function(pos, sp[None], su[None], minel)
                sp_dt = ecef_to_inertial(ecef[None, :], jd, frame, offset + dt)
                su_dt = ecef_to_inertial(up[None, :], jd, frame, offset + dt)
                slopes = (elevation_function(pos_dt, sp_dt[None], su_dt[None], minel) - vis) / dt
                self.contact += vis[:, 0] > 0
                self.contact_st[:, s] += vis[:, 0] > 0

                def fn(r: I64, k: I64, t: F64, ecef: F64 = ecef, up: F64 = up, minel: float = minel) -> F64:
                    p, u = rotate(ecef, k, t), rotate(up, k, t)
                    return np.asarray(elevation_function(at(r, k, t), p, u, minel), dtype=np.float64)

                rows, tc, rising = find_edges(vis, slopes, knots, fn, tol)
                self._add(rows, tc, CONTACT, s, np.where(rising, 1.0, -1.0))
        else:
            for w, (sat, t0, t1) in enumerate(self._windows):
                if not self.lo <= sat < self.hi:
                    continue
                local = np.array([sat - self.lo], dtype=np.int64)
                if t0 <= knots[0] < t1:
                    self.contact[local] += 1
                elif knots[0] < t0 <= knots[-1]:
                    self._add(local, np.array([t0]), CONTACT, w, 1.0)
                if knots[0] < t1 <= knots[-1] and t0 < t1:
                    self._add(local, np.array([t1]), CONTACT, w, -1.0)

        if sim.relays is not None:
            rpos, rvel = sim.relays.state(knots)
            for r in range(sim.relays.n):
                los = isl_function_m2(pos, rpos[r][None], cfg.isl_radius_m)
                slopes = (isl_function_m2(pos_dt, (rpos[r] + rvel[r] * dt)[None], cfg.isl_radius_m) - los) / dt
                self.isl += los[:, 0] > 0
                self.relay += los[:, 0] > 0

                def relay_fn(rows: I64, ks: I64, t: F64, r: int = r) -> F64:
                    u = (t - knots[ks]) / hk[ks]
                    p_relay = hermite_position(rpos[r, ks], rvel[r, ks], rpos[r, ks + 1], rvel[r, ks + 1], hk[ks], u)
                    return np.asarray(isl_function_m2(at(rows, ks, t), p_relay, cfg.isl_radius_m), dtype=np.float64)

                rows, tr, rising = find_edges(los, slopes, knots, relay_fn, tol)
                self._add(rows, tr, ISL, -1 - r, np.where(rising, 1.0, -1.0))

        if cfg.isl_pairs:
            pa = np.array([p[0] for p in cfg.isl_pairs], dtype=np.int64)
            pb = np.array([p[1] for p in cfg.isl_pairs], dtype=np.int64)
            los = isl_function_m2(pos[pa], pos[pb], cfg.isl_radius_m)
            slopes = (isl_function_m2(pos_dt[pa], pos_dt[pb], cfg.isl_radius_m) - los) / dt
            np.add.at(self.isl, pa, los[:, 0] > 0)
            np.add.at(self.isl, pb, los[:, 0] > 0)
            rows, ti, rising = find_edges(
                los,
                slopes,
                knots,
                lambda r, k, t: isl_function_m2(at(pa[r], k, t), at(pb[r], k, t), cfg.isl_radius_m),
                tol,
            )
            val = np.where(rising, 1.0, -1.0)
            self._add(pa[rows], ti, ISL, rows, val)
            self._add(pb[rows], ti, ISL, rows, val)
            self.pair_los = los[:, 0] > 0
            self.update_flows()

        rs, rt, rk = self._rad
        m = (rs >= self.lo) & (rs < self.hi)
        for kind in (RESTART, FAILURE):
            mk = m & (rk == kind)
            self._add(rs[mk] - self.lo, rt[mk], kind, 0, 0.0)
        for sat, t, a in self._schedule:
            if self.lo <= sat < self.hi and t <= knots[-1]:
                self._add(np.array([sat - self.lo]), np.array([max(t, knots[0])]), SCHEDULE, a, 0.0)
        for p, (sat, t) in enumerate(self._probes):
            if self.lo <= sat < self.hi and knots[0] <= t <= knots[-1]:
                self._add(np.array([sat - self.lo]), np.array([t]), PROBE, p, 0.0)

        if self.flow_from.size and self._ev:
            # both ends of a flow get every event of the other (as a no-op SYNC), so they are always advanced
            # together and the data a sender sends over a piece is credited to its receiver over the same piece
            cols = [np.concatenate([e[i] for e in self._ev]) for i in range(5)]
            for group in self.flow_groups():
                own = np.isin(cols[0], group)
                for dst in group:
                    m = own & (cols[0] != dst)
                    self._add(np.full(int(m.sum()), dst, dtype=np.int64), cols[1][m], SYNC, 0, 0.0)
        if self._ev:
            cols = [np.concatenate([e[i] for e in self._ev]) for i in range(5)]
        else:
            cols = [np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)]
        order = np.argsort(cols[1], kind="stable")
        self.ev_sat, self.ev_t, self.ev_kind, self.ev_arg, self.ev_val = (c[order] for c in cols)

    # -- state -------------------------------------------------------------------------------------------------
    def view(self, s: I64, t: F64, E: F64, T: F64, D: F64, P: F64, act: I64 | None = None) -> FleetState:
        cap_b = self.store_cap[s]
        return FleetState(
            time_s=t, soc=E / self.cap[s], energy_wh=E / 3600.0, temperature_k=T, stored_bytes=D,
            storage_fill=np.where(np.isfinite(cap_b) & (cap_b > 0), D / np.where(cap_b > 0, cap_b, 1.0), 0.0),
            in_eclipse=self.ecl[s], in_contact=self.contact[s] > 0, isl_contact=self.isl[s] > 0,
            alive=self.alive[s], custom={p.name: P[j] for j, p in enumerate(self.props)},
            station_contact=self.contact_st[s] > 0, station_names=self.station_names,
            power_w=self.draw[s, self.act[s] if act is None else act],
        )  # fmt: skip

    def integrate(
        self, s: I64, act: I64, E: F64, T: F64, D: F64, P: F64, start: F64, h: F64
    ) -> tuple[F64, F64, F64, F64, F64]:
        sunlit = ~self.ecl[s]
        draw = self.draw[s, act]
        rate = self.rate[s, act]
        E1 = advance_energy_ws(E, self.cap[s], net_power_w(self.charge[s], draw, sunlit, self.rtg[s]), h)
        k = self.ka
        ta, tb = self.knots[k], self.knots[k + 1]
        u = np.minimum(np.maximum((start + 0.5 * h - ta) / (tb - ta), 0.0), 1.0)
        rk = self.r_knots[s, k]
        r = rk + (self.r_knots[s, k + 1] - rk) * u
        cm = self.cmat[:, s]
        coeff = ThermalCoefficients(cm[0], cm[1], cm[2], cm[3], cm[4], cm[5])
        if self.all_thermal:
            T1 = advance_temperature_k(T, coeff, sunlit, r, draw, h, self.cfg.thermal_max_step_s)
        else:
            T1 = advance_temperature_k(np.nan_to_num(T), coeff, sunlit, r, draw, h, self.cfg.thermal_max_step_s)
            T1 = np.where(self.has_thermal[s], T1, np.nan)
        cap_b = self.store_cap[s]
        produced = np.minimum(D + rate * h, cap_b)
        drain = self.drain_rate(s)
        D1 = np.minimum(np.maximum(D + (rate - drain) * h, 0.0), cap_b)
        return E1, T1, D1, self.update_custom(s, act, E, T, D, P, start, h), np.maximum(produced - D1, 0.0)

    def update_custom(self, s: I64, act: I64, E: F64, T: F64, D: F64, P: F64, start: F64, h: F64) -> F64:
        """Custom properties after h seconds: each update function called on sub-steps of at most
        `thermal_max_step_s`, seeing the fleet as it was at the start of the piece (power, temperature and data
        change slowly over one piece; PASEOS calls them once per time step)."""
        if not self.updaters:
            return P
        P = P.copy()
        n_sub = max(1, int(np.ceil(float(np.max(h, initial=0.0)) / self.cfg.thermal_max_step_s)))
        dt = h / n_sub
        for j in range(n_sub):
            view = self.view(s, start + j * dt, E, T, D, P, act)
            for row, fn in self.updaters:
                P[row] = np.asarray(fn(view, P[row], dt), dtype=np.float64)
        return P

    def ok(self, s: I64, act: I64, t: F64, E: F64, T: F64, D: F64, P: F64) -> B:
        good = np.ones(s.size, dtype=np.bool_)
        view = self.view(s, t, E, T, D, P, act)
        for a, pred in self.constraints:
            m = act == a
            if m.any():
                good &= ~m | np.asarray(pred(view), dtype=np.bool_)
        return good

    def margin(
        self, s: I64, act: I64, t: F64, E: F64, T: F64, D: F64, P: F64, comp: I64 | None = None
    ) -> tuple[F64, I64] | None:
        """Margin of one comparison of each satellite's constraint (> 0 while it holds): the comparison `comp`, or
        when None the one with the smallest margin now (returned too). None if a constraint has no margins."""
        out = np.full(s.size, np.inf)
        chosen = np.zeros(s.size, dtype=np.int64) if comp is None else comp
        view = self.view(s, t, E, T, D, P, act)
        cols = np.arange(s.size)
        for a, pred in self.constraints:
            m = act == a
            if m.any():
                fn = getattr(pred, "margins", None)
                values = fn(view) if fn is not None else None
                if values is None:
                    return None
                c = np.argmin(values, axis=0) if comp is None else np.minimum(comp, values.shape[0] - 1)
                out = np.where(m, values[c, cols], out)
                if comp is None:
                    chosen = np.where(m, c, chosen)
        return out, chosen

    def crossing(
        self,
        sb: I64,
        ab: I64,
        E0: F64,
        T0: F64,
        D0: F64,
        P0: F64,
        start: F64,
        hb: F64,
        end_state: tuple[F64, F64, F64, F64],
    ) -> F64:
        """Time into the piece at which the constraint first fails, to within tolerance: regula falsi on the margin
        of the comparison that fails at the end of the piece, then bisection on the predicate where needed."""
        tol = self.cfg.tolerance_s
        lo, hi = np.zeros(sb.size), hb.copy()
        E1, T1, D1, P1 = end_state
        end = self.margin(sb, ab, start + hb, E1, T1, D1, P1)
        start_m = None if end is None else self.margin(sb, ab, start, E0, T0, D0, P0, end[1])
        if end is not None and start_m is not None:
            m_hi, comp = end
            m_lo = start_m[0]
            already = m_lo <= 0
            hi = np.where(already, 0.0, hi)
            for _ in range(8):
                open_ = (hi - lo > tol) & ~already
                if not open_.any():
                    break
                # regula falsi guess, then test a bracket of one tolerance around it: margins are smooth
                # (SoC linear, T nearly so over a step), so this closes in one or two rounds
                with np.errstate(divide="ignore", invalid="ignore"):
                    guess = lo - m_lo * (hi - lo) / (m_hi - m_lo)
                guess = np.where(np.isfinite(guess), guess, 0.5 * (lo + hi))
                a = np.clip(guess - 0.45 * tol, lo, hi)
                b = np.clip(guess + 0.45 * tol, lo, hi)
                both = np.concatenate([a, b])
                s2, a2, c2 = np.concatenate([sb, sb]), np.concatenate([ab, ab]), np.concatenate([comp, comp])
                E2, T2, D2 = (np.concatenate([x, x]) for x in (E0, T0, D0))
                P2 = np.concatenate([P0, P0], axis=1)
                st2 = np.concatenate([start, start])
                Em, Tm, Dm, Pm, _ = self.integrate(s2, a2, E2, T2, D2, P2, st2, both)
                got = self.margin(s2, a2, st2 + both, Em, Tm, Dm, Pm, c2)
                assert got is not None
                m_a, m_b = got[0][: sb.size], got[0][sb.size :]
                after_b = open_ & (m_b > 0)
                before_a = open_ & (m_a <= 0)
                inside = open_ & ~after_b & ~before_a
                lo = np.where(after_b, b, np.where(inside, a, lo))
                # Illinois: the end that did not move has its margin halved, so guesses cannot stall at one end
                m_lo = np.where(after_b, m_b, np.where(inside, m_a, np.where(before_a, 0.5 * m_lo, m_lo)))
                hi = np.where(before_a, a, np.where(inside, b, hi))
                m_hi = np.where(before_a, m_a, np.where(inside, m_b, np.where(after_b, 0.5 * m_hi, m_hi)))
        width = float(np.max(hi - lo, initial=0.0))
        iters = max(0, math.ceil(math.log2(max(width, tol) / tol)))
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            Em, Tm, Dm, Pm, _ = self.integrate(sb, ab, E0, T0, D0, P0, start, mid)
            good = self.ok(sb, ab, start + mid, Em, Tm, Dm, Pm)
            active = hi - lo > tol  # each edge stops on its own, so results do not depend on its neighbours
            lo, hi = np.where(good & active, mid, lo), np.where(~good & active, mid, hi)
        return hi

    def log_activity(self, s: I64, t: F64, new: I64, reason: str) -> None:
        old = self.act[s]
        ch = old != new
        if ch.any():
            times = np.asarray(t, dtype=np.float64)[ch] if np.ndim(t) else np.full(int(ch.sum()), float(t))
            kinds = np.full(int(ch.sum()), ACTIVITY, np.int64)
            self._log.append((s[ch], times, kinds, new[ch], old[ch].astype(np.float64)))
            if self.callbacks:
                self.call_back(s[ch], times, old[ch], new[ch], reason)
        self.act[s] = new

    def call_back(self, s: I64, t: F64, old: I64, new: I64, reason: str) -> None:
        """User code on activity ends (first) and starts, grouped by activity; sats are fleet indices."""
        acts = self.sim.activities
        for which, hook, why in ((old, "on_end", reason), (new, "on_start", reason)):
            for a in np.unique(which):
                fn = getattr(acts[a], hook) if a < len(acts) else None
                if fn is not None:
                    m = which == a
                    run_sync(fn, ActivityChange(acts[a].name, s[m] + self.lo, t[m], why))

    def advance(self, s: I64, h: F64) -> None:
        pos = h > 0
        if not pos.all():
            s, h = s[pos], h[pos]
        if s.size == 0:
            return
        start = self.cur[s]
        act = self.act[s]
        E0, T0, D0, P0 = self.E[s], self.T[s], self.D[s], self.P[:, s]
        E1, T1, D1, P1, dl = self.integrate(s, act, E0, T0, D0, P0, start, h)
        if self.constraints:
            bad = ~self.ok(s, act, start + h, E1, T1, D1, P1)
            if bad.any():
                b = np.flatnonzero(bad)
                sb, hb, ab = s[b], h[b], act[b]
                Pb = P0[:, b]
                hi = self.crossing(sb, ab, E0[b], T0[b], D0[b], Pb, start[b], hb, (E1[b], T1[b], D1[b], P1[:, b]))
                Ec, Tc, Dc, Pc, dlc = self.integrate(sb, ab, E0[b], T0[b], D0[b], Pb, start[b], hi)
                new = self.sim.fallback[ab]
                self.log_activity(sb, start[b] + hi, new, "constraint")
                Er, Tr, Dr, Pr, dlr = self.integrate(sb, new, Ec, Tc, Dc, Pc, start[b] + hi, hb - hi)
                E1[b], T1[b], D1[b], dl[b] = Er, Tr, Dr, dlc + dlr
                if P1 is not P0:
                    P1[:, b] = Pr
        if self.floor is not None:
            fl = self.floor[s]
            crossed = (fl <= E0) & (fl > E1)
            if crossed.any():
                c = np.flatnonzero(crossed)
                frac = (E0[c] - fl[c]) / np.maximum(E0[c] - E1[c], 1e-300)
                self.floor_log.append((s[c], start[c] + frac * h[c], act[c]))
        self.E[s], self.T[s], self.D[s] = E1, T1, D1
        if self.updaters:
            self.P[:, s] = P1
        if self.flow_from.size:
            dl = self.send_over_links(s, dl)
        self.downlinked[s] += dl
        self.exposure[s] += 4.0 * h * (D0 + D1)  # 8 bits x trapezoid of the stored bytes
        self.cur[s] = start + h

    def drain_rate(self, s: I64) -> F64:
        """Bytes/s leaving each spacecraft while it holds data: ground, relays and open outgoing flows."""
        ground = np.where(self.contact[s] > 0, self.downlink[s], 0.0)
        return np.asarray(ground + np.where(self.relay[s] > 0, self.relay_rate[s], 0.0) + self.isl_out[s])

    def flow_groups(self) -> list[list[int]]:
        """Spacecraft connected by flows (chains and trees too): each group shares all its events."""
        parent = list(range(self.n))

        def root(k: int) -> int:
            while parent[k] != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        for a, b in zip(self.flow_from.tolist(), self.flow_to.tolist(), strict=True):
            parent[root(a)] = root(b)
        members = sorted(set(self.flow_from.tolist()) | set(self.flow_to.tolist()))
        groups: dict[int, list[int]] = {}
        for k in members:
            groups.setdefault(root(k), []).append(k)
        return list(groups.values())

    def update_flows(self) -> None:
        """Outgoing link rate of every spacecraft from the flows whose pair is in line of sight now."""
        if self.flow_from.size:
            open_rate = self.flow_rate * self.pair_los[self.flow_pair]
            self.isl_out = np.bincount(self.flow_from, weights=open_rate, minlength=self.n).astype(np.float64)

    def send_over_links(self, s: I64, dl: F64) -> F64:
        """Split what left each spacecraft over the piece between its links (all drains run at constant rates
        while it holds data, so in proportion to their rates), credit the link share to the receivers (up to
        their storage), and return the share that went to the ground and relays."""
        total = self.drain_rate(s)
        sent = np.where(total > 0, dl * self.isl_out[s] / np.where(total > 0, total, 1.0), 0.0)
        if not np.any(sent > 0):
            return dl
        per_sat = np.zeros(self.n)
        per_sat[s] = sent
        open_rate = self.flow_rate * self.pair_los[self.flow_pair]
        out = self.isl_out[self.flow_from]
        share = np.where(out > 0, open_rate / np.where(out > 0, out, 1.0), 0.0)
        gain = np.bincount(self.flow_to, weights=per_sat[self.flow_from] * share, minlength=self.n)
        got = np.flatnonzero(gain > 0)
        before = self.D[got]
        self.D[got] = np.minimum(before + gain[got], self.store_cap[got])
        self.isl_received[got] += self.D[got] - before
        self.isl_sent[s] += sent
        return np.asarray(dl - sent, dtype=np.float64)

    def apply(self, sel: I64) -> None:
        sats, kinds, args, vals, ts = (self.ev_sat[sel], self.ev_kind[sel], self.ev_arg[sel], self.ev_val[sel],
                                       self.ev_t[sel])  # fmt: skip
        for kind in np.unique(kinds):
            m = kinds == kind
            s = sats[m]
            if kind == ECLIPSE:
                self.ecl[s] = vals[m] > 0.5
            elif kind == CONTACT:
                self.contact[s] += vals[m].astype(np.int64)
                if self._windows is None:
                    np.add.at(self.contact_st, (s, args[m]), vals[m].astype(np.int64))
            elif kind == ISL:
                self.isl[s] += vals[m].astype(np.int64)
                pair = args[m] >= 0
                if pair.any() and self.flow_from.size:
                    self.pair_los[args[m][pair]] = vals[m][pair] > 0
                    self.update_flows()
                to_relay = args[m] < 0
                self.relay[s[to_relay]] += vals[m][to_relay].astype(np.int64)
            elif kind == RESTART:
                live = self.alive[s]
                self.log_activity(s[live], ts[m][live], self.sim.fallback[self.act[s[live]]], "restart")
            elif kind == FAILURE:
                self.log_activity(s, ts[m], np.full(s.size, self.sim.off, dtype=np.int64), "failure")
                self.alive[s] = False
            elif kind == SCHEDULE:
                live = self.alive[s]
                a = args[m][live]
                self.log_activity(s[live], ts[m][live], np.where(a >= 0, a, self.sim.default_activity), "schedule")
            elif kind == PROBE:
                self.probe_id.append(args[m])
                self.probe_soc.append(self.E[s] / self.cap[s])
                self.probe_stored.append(self.D[s].copy())

    def decide(self, t: float) -> None:
        view = self.view(self.all, np.full(self.n, t), self.E, self.T, self.D, self.P)
        new = np.full(self.n, self.sim.default_activity, dtype=np.int64)
        for rule in reversed(self.sim.rules):
            new[np.asarray(rule.when(view), dtype=np.bool_)] = self.sim.activity_index[rule.activity]
        new[~self.alive] = self.sim.off
        self.log_activity(self.all, np.full(self.n, t), new, "decision")

    # -- main loop ---------------------------------------------------------------------------------------------
    def run(self, report: Callable[[float], None]) -> dict[str, np.ndarray]:
        self.geometry()
        knots = self.knots
        record = np.isin(knots, self.sim.record_times(float(knots[0]), float(knots[-1])))
        recs: dict[str, list[np.ndarray]] = {k: [] for k in ("soc", "T", "D", "act", "ecl", "con", "isl", "custom")}
        times: list[float] = []
        first = int(np.searchsorted(self.ev_t, knots[0], side="right"))
        if first:
            self.apply(np.arange(first))

        def snap(t: float) -> None:
            times.append(t)
            recs["soc"].append(self.E / self.cap)
            recs["T"].append(self.T.copy())
            recs["D"].append(self.D.copy())
            recs["act"].append(self.act.astype(np.int16))
            recs["ecl"].append(self.ecl.copy())
            recs["con"].append(self.contact > 0)
            recs["isl"].append(self.isl > 0)
            recs["custom"].append(self.P.copy())

        n_int = knots.size - 1
        report_every = max(1, n_int // 50)
        for k in range(n_int):
            ta, tb = float(knots[k]), float(knots[k + 1])
            self.ka = k
            if self.is_decision[k] and not self.forced:
                self.decide(ta)
            if record[k] and (not times or times[-1] != ta):
                snap(ta)
            lo = int(np.searchsorted(self.ev_t, ta, side="right"))
            hi = int(np.searchsorted(self.ev_t, tb, side="right"))
            self.cur.fill(ta)
            if hi > lo:
                es = self.ev_sat[lo:hi]
                order = np.argsort(es, kind="stable")
                ss = es[order]
                head = np.r_[True, ss[1:] != ss[:-1]]
                group_start = np.maximum.accumulate(np.where(head, np.arange(ss.size), 0))
                rank = np.empty(ss.size, dtype=np.int64)
                rank[order] = np.arange(ss.size) - group_start
                for j in range(int(rank.max()) + 1):
                    sel = lo + np.flatnonzero(rank == j)
                    sats = self.ev_sat[sel]
                    self.advance(sats, self.ev_t[sel] - self.cur[sats])
                    self.apply(sel)
            self.advance(self.all, tb - self.cur)
            if record[k + 1] and k + 1 == n_int:
                snap(tb)
            if k % report_every == 0 or k == n_int - 1:
                report((k + 1) / n_int)

        ev = [e for e in self._ev if e[2].size and e[2][0] in (ECLIPSE, CONTACT, ISL, RESTART, FAILURE)] + self._log
        cols = [np.concatenate([e[i] for e in ev]) if ev else np.zeros(0) for i in range(5)]
        out: dict[str, np.ndarray] = {
            "times_s": np.array(times),
            "soc": np.array(recs["soc"]).reshape(len(times), self.n),
            "temperature_k": np.array(recs["T"]).reshape(len(times), self.n),
            "stored_bytes": np.array(recs["D"]).reshape(len(times), self.n),
            "activity": np.array(recs["act"], dtype=np.int16).reshape(len(times), self.n),
            "in_eclipse": np.array(recs["ecl"], dtype=np.bool_).reshape(len(times), self.n),
            "in_contact": np.array(recs["con"], dtype=np.bool_).reshape(len(times), self.n),
            "isl_contact": np.array(recs["isl"], dtype=np.bool_).reshape(len(times), self.n),
            "custom": np.array(recs["custom"], dtype=np.float64).reshape(len(times), len(self.props), self.n),
            "final_custom": self.P,
            "event_sat": cols[0].astype(np.int64) + self.lo,
            "event_time_s": cols[1].astype(np.float64),
            "event_kind": cols[2].astype(np.int64),
            "event_arg": cols[3].astype(np.int64),
            "event_value": cols[4].astype(np.float64),
            "downlinked": self.downlinked,
            "isl_sent": self.isl_sent,
            "isl_received": self.isl_received,
            "exposure": self.exposure,
            "final_energy": self.E,
            "final_temperature": self.T,
            "final_stored": self.D,
            "final_activity": self.act,
            "final_alive": self.alive,
            "probe_id": np.concatenate(self.probe_id) if self.probe_id else np.zeros(0, np.int64),
            "probe_soc": np.concatenate(self.probe_soc) if self.probe_soc else np.zeros(0),
            "probe_stored": np.concatenate(self.probe_stored) if self.probe_stored else np.zeros(0),
            "floor_sat": (np.concatenate([f[0] for f in self.floor_log]) + self.lo) if self.floor_log
            else np.zeros(0, np.int64),
            "floor_time": np.concatenate([f[1] for f in self.floor_log]) if self.floor_log else np.zeros(0),
            "floor_activity": np.concatenate([f[2] for f in self.floor_log]) if self.floor_log
            else np.zeros(0, np.int64),
        }  # fmt: skip
        return out
