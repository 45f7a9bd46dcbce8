"""PASEOS paper, section III-C: two satellites learn a classifier together, exchanging models when they see each
other. numpy only.

The orbits, batteries and modes come from `learning_pair.yaml` (Standby when SoC < 0.5, ModelSharing while in line
of sight, otherwise Training). The simulator gives each satellite's activity every 60 s; one minute of Training is
one epoch of SGD on the satellite's own data, and at each inter-satellite contact (after the first ten revolutions,
as in the paper) the two models are averaged (federated averaging). Data: two concentric circles (inner = class 1);
satellite 0 only has points with x > 0.5, satellite 1 only x < -0.5; the test set covers the whole plane.

    .venv/bin/python examples/sim/decentralised_learning.py [--plot accuracy.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from skymesh.sim.engine import EventKind
from skymesh.sim.scenario import load_scenario

HERE = Path(__file__).parent


def circles(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    label = rng.integers(0, 2, n)
    radius = np.where(label == 1, 0.5, 1.0) + rng.normal(0, 0.08, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1), label.astype(float)


class MLP:
    """2 -> 10 (tanh) -> 1 (sigmoid), binary cross-entropy, plain SGD."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.w1 = rng.normal(0, 1.0, (2, 10))
        self.b1 = np.zeros(10)
        self.w2 = rng.normal(0, 1.0, (10, 1))
        self.b2 = np.zeros(1)

    def params(self) -> list[np.ndarray]:
        return [self.w1, self.b1, self.w2, self.b2]

    def predict(self, x: np.ndarray) -> np.ndarray:
        h = np.tanh(x @ self.w1 + self.b1)
        return 1 / (1 + np.exp(-(h @ self.w2 + self.b2)[:, 0]))

    def epoch(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, lr: float = 0.1, batch: int = 32) -> None:
        order = rng.permutation(len(x))
        for lo in range(0, len(x), batch):
            idx = order[lo : lo + batch]
            xb, yb = x[idx], y[idx]
            h = np.tanh(xb @ self.w1 + self.b1)
            p = 1 / (1 + np.exp(-(h @ self.w2 + self.b2)[:, 0]))
            g = (p - yb)[:, None] / len(idx)
            gw2, gb2 = h.T @ g, g.sum(0)
            gh = (g @ self.w2.T) * (1 - h * h)
            gw1, gb1 = xb.T @ gh, gh.sum(0)
            for param, grad in zip(self.params(), (gw1, gb1, gw2, gb2), strict=True):
                param -= lr * grad

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean((self.predict(x) > 0.5) == (y > 0.5)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--scenario", type=Path, default=HERE / "learning_pair.yaml")
    args = parser.parse_args()

    scenario = load_scenario(args.scenario)
    result = scenario.simulation.run(scenario.duration_s)
    period_s = 2 * np.pi * np.sqrt(6921000.0**3 / 398600.4418e9)
    names = result.activity_names
    training = names.index("Training")

    rng = np.random.default_rng(0)
    x_all, y_all = circles(4166 * 3, rng)
    shards = [np.flatnonzero(x_all[:, 0] > 0.5), np.flatnonzero(x_all[:, 0] < -0.5)]
    x_test, y_test = circles(3300, rng)
    models = [MLP(np.random.default_rng(1)), MLP(np.random.default_rng(2))]
    model_rng = np.random.default_rng(3)

    isl_times, isl_values = result.edges(EventKind.ISL, 0)
    exchanges = [t for t, v in zip(isl_times, isl_values, strict=True) if v > 0 and t > 10 * period_s]
    epochs = [0, 0]
    accuracy: list[tuple[float, float, float]] = []
    next_exchange = 0
    for k, t in enumerate(result.times_s[:-1]):
        while next_exchange < len(exchanges) and exchanges[next_exchange] <= t:
            both_alive = bool(np.all(result.soc[k] > 0))
            if both_alive:
                for pa, pb in zip(models[0].params(), models[1].params(), strict=True):
                    mean = 0.5 * (pa + pb)
                    pa[...] = mean
                    pb[...] = mean
            next_exchange += 1
        for sat in (0, 1):
            if result.activity[k, sat] == training:
                models[sat].epoch(x_all[shards[sat]], y_all[shards[sat]], model_rng)
                epochs[sat] += 1
        accuracy.append((t, models[0].accuracy(x_test, y_test), models[1].accuracy(x_test, y_test)))

    n_params = sum(p.size for p in models[0].params())
    isl_rate = 125000.0  # bytes/s, learning_pair.yaml: 1 Mbit/s
    print(
        f"model: {n_params} float32 parameters = {32 * n_params} bits, "
        f"{32 * n_params / (8 * isl_rate) * 1e3:.2f} ms over the 1 Mbit/s link (the paper: 1312 bits)"
    )
    print(f"{len(exchanges)} model exchanges; epochs trained: {epochs}")
    print(f"final test accuracy: satellite 0 {accuracy[-1][1]:.3f}, satellite 1 {accuracy[-1][2]:.3f}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        arr = np.array(accuracy)
        fig, ax = plt.subplots(figsize=(9, 3.5))
        ax.plot(arr[:, 0] / period_s, arr[:, 1], label="satellite 0")
        ax.plot(arr[:, 0] / period_s, arr[:, 2], label="satellite 1")
        for t in exchanges:
            ax.axvline(t / period_s, color="0.8", linewidth=0.5, zorder=0)
        ax.set_xlabel("orbital revolutions")
        ax.set_ylabel("test accuracy")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"figure -> {args.plot}")


if __name__ == "__main__":
    main()
