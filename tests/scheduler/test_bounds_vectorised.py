"""`request_bound` without Python loops over candidates gives exactly the value of the per-candidate reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skymesh.scheduler.bounds import _rank_in_groups, _request_partition, request_bound, usable_mask
from skymesh.scheduler.kernel import Problem
from tests.scheduler.test_greedy_fast import _random_problem


def _reference(problem: Problem, usable: np.ndarray) -> float:
    """The per-candidate version `request_bound` replaced (a dict lookup per candidate, a mask per request)."""
    ops = problem.opportunities
    idx = np.flatnonzero(usable)
    length, cap_bin = _request_partition(problem)
    req, val = ops.request[idx], ops.value[idx]
    ln = length[req]
    bins = np.where(ln > 0, np.floor(ops.start_s[idx] / np.where(ln > 0, ln, 1.0)), 0).astype(np.int64)
    used_bin: dict[tuple[int, int], int] = {}
    used_req: dict[int, int] = {}
    for f in problem.frozen:
        if f.request >= 0:
            b = math.floor(f.start_s / length[f.request]) if length[f.request] > 0 else 0
            used_bin[(f.request, b)] = used_bin.get((f.request, b), 0) + 1
            used_req[f.request] = used_req.get(f.request, 0) + 1
    bmin = int(bins.min())
    key = req * (int(bins.max()) - bmin + 1) + (bins - bmin)
    order = np.lexsort((-val, key))
    rank = _rank_in_groups(key, order)
    used = np.asarray([used_bin.get((int(r), int(b)), 0) for r, b in zip(req[order], bins[order], strict=True)])
    keep = order[rank < cap_bin[req[order]] - used]
    cap_total = np.asarray(
        [r.max_total - used_req.get(k, 0) if r.max_total else 1 << 40 for k, r in enumerate(problem.requests)]
    )
    for k, r in enumerate(problem.requests):
        if r.cadence_s > 0 and (req == k).any():
            s = ops.start_s[idx[req == k]]
            cap_total[k] = min(int(cap_total[k]), int((s.max() - s.min()) // r.cadence_s) + 1)
    order2 = keep[np.lexsort((-val[keep], req[keep]))]
    final = order2[_rank_in_groups(req, order2) < cap_total[req[order2]]]
    return float(val[final].sum())


@pytest.mark.parametrize("seed", range(40))
def test_same_bound_as_reference(seed: int) -> None:
    problem = _random_problem(seed, n=400)
    usable = usable_mask(problem)
    assert problem.frozen and any(f.request >= 0 for f in problem.frozen)
    assert request_bound(problem, usable) == _reference(problem, usable)
    everything = np.ones(len(problem.opportunities), dtype=bool)
    assert request_bound(problem, everything) == _reference(problem, everything)


def test_cadence_caps_the_total() -> None:
    """Starts 20 s apart in two cadence bins: the bins allow two, the cadence one (the better)."""
    from skymesh.scheduler.kernel import OpportunitySet, Request, Resource

    nan = np.full(2, np.nan)
    ops = OpportunitySet(
        np.array([0, 0]), np.array([0, 1]), np.array([590.0, 610.0]), np.array([650.0, 700.0]),
        np.array([3.0, 5.0]), nan, nan, nan, nan,
    )  # fmt: skip
    problem = Problem([Request("r", cadence_s=600.0)], [Resource("a"), Resource("b")], ops, [])
    usable = np.ones(2, dtype=bool)
    assert request_bound(problem, usable) == _reference(problem, usable) == 5.0


@pytest.mark.parametrize("seed", range(3))
def test_resource_dp_compiled_same_as_python(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from skymesh.scheduler.bounds import resource_dp_bound
    from skymesh.scheduler.greedy import compiled_greedy

    if compiled_greedy() is None:
        pytest.skip("numba not importable")
    problem = _random_problem(seed, n=20_000)  # above the size where the compiled loop is used
    compiled = resource_dp_bound(problem)
    monkeypatch.setenv("SKYMESH_NO_NUMBA", "1")
    assert resource_dp_bound(problem) == compiled > 0
