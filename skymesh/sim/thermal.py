"""One-node thermal model, equations 1-6 of the PASEOS paper, per spacecraft parameters, vectorised.

    m c dT/dt = (1 - eclipse) (Q_solar + Q_albedo) + Q_IR + Q_activity - Q_diss               (1)
    Q_solar    = alpha_sun A_sun E_s                                                          (2)
    Q_albedo   = 0.5 alpha_sun A_body rho_b E_s                                               (3)
    Q_IR       = alpha_IR eps_b sigma T_b^4 A_body (R_b / r)^2                                (4)
    Q_activity = kappa P                                                                      (5)
    Q_diss     = alpha_IR A_emit sigma T^4                                                    (6)

The constants follow PASEOS's code (`paseos/thermal/thermal_model.py`): the spacecraft's infrared absorptance is
also its emissivity in (6), R_b is the central body's radius (pykep's Earth, 6378 km) and r the distance to its
centre. PASEOS integrates with explicit Euler at its time step; between events the only non-linear term is T^4,
so here each piece between events is integrated with classical RK4 on sub-steps of at most `max_step_s`
(the time constant m c / (4 alpha A sigma T^3) is ~2000 s for the paper's satellites, so 60 s steps are exact to
far better than 0.01 K).

Imports numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["STEFAN_BOLTZMANN", "ThermalCoefficients", "advance_temperature_k"]

F64 = NDArray[np.float64]
B = NDArray[np.bool_]

STEFAN_BOLTZMANN = 5.670374419e-8  # W m^-2 K^-4, the value PASEOS uses


@dataclass(frozen=True)
class ThermalCoefficients:
    """Per-spacecraft constants of the ODE, arrays of shape (n,); build with `from_params`."""

    sunlit_w: F64  # Q_solar + Q_albedo
    body_ir_w_at_surface: F64  # Q_IR at r = R_b
    body_radius_m: F64
    emission_w_per_k4: F64
    heat_ratio: F64
    heat_capacity_j_per_k: F64  # m c

    @classmethod
    def from_params(
        cls,
        mass_kg: F64,
        thermal_capacity_j_per_kg_k: F64,
        sun_absorptance: F64,
        infrared_absorptance: F64,
        sun_facing_area_m2: F64,
        body_facing_area_m2: F64,
        emissive_area_m2: F64,
        body_solar_irradiance_w_m2: F64,
        body_surface_temperature_k: F64,
        body_emissivity: F64,
        body_reflectance: F64,
        heat_ratio: F64,
        body_radius_m: F64,
    ) -> ThermalCoefficients:
        solar = sun_absorptance * sun_facing_area_m2 * body_solar_irradiance_w_m2
        albedo = 0.5 * sun_absorptance * body_facing_area_m2 * body_reflectance * body_solar_irradiance_w_m2
        body_ir = (
            infrared_absorptance * body_emissivity * body_facing_area_m2 * STEFAN_BOLTZMANN
            * body_surface_temperature_k**4
        )  # fmt: skip
        emission = infrared_absorptance * emissive_area_m2 * STEFAN_BOLTZMANN
        return cls(solar + albedo, body_ir, body_radius_m, emission, heat_ratio, mass_kg * thermal_capacity_j_per_kg_k)

    def subset(self, index: NDArray[np.int64]) -> ThermalCoefficients:
        return ThermalCoefficients(
            self.sunlit_w[index], self.body_ir_w_at_surface[index], self.body_radius_m[index],
            self.emission_w_per_k4[index], self.heat_ratio[index], self.heat_capacity_j_per_k[index],
        )  # fmt: skip


def advance_temperature_k(
    temperature_k: F64,
    coeff: ThermalCoefficients,
    sunlit: B,
    radius_m: F64,
    draw_w: F64,
    h_s: F64,
    max_step_s: float = 60.0,
) -> F64:
    """Temperature after h_s seconds with eclipse state, distance and power constant over the piece (RK4)."""
    heat_in = (
        np.where(sunlit, coeff.sunlit_w, 0.0)
        + coeff.body_ir_w_at_surface * (coeff.body_radius_m / radius_m) ** 2
        + coeff.heat_ratio * draw_w
    )
    a = heat_in / coeff.heat_capacity_j_per_k
    b = coeff.emission_w_per_k4 / coeff.heat_capacity_j_per_k
    h_max = float(np.max(h_s, initial=0.0))
    n_sub = max(1, int(np.ceil(h_max / max_step_s)))
    h = h_s / n_sub
    t = temperature_k

    def rate(x: F64) -> F64:
        x2 = x * x  # x**4 through multiplications: np.power is several times slower
        out: F64 = a - b * (x2 * x2)
        return out

    for _ in range(n_sub):
        k1 = rate(t)
        k2 = rate(t + 0.5 * h * k1)
        k3 = rate(t + 0.5 * h * k2)
        k4 = rate(t + h * k3)
        t = t + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return np.maximum(t, 0.0)
