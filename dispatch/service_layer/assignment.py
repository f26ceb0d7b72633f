"""Solve one window's assignment (dispatch.domain.assignment's objective), sparse.

Formulation: riders are rows; columns are the window's drivers plus one "stay unmatched"
column per rider (only that rider may take it, at cost penalty_s). Every rider then has
a full match, so the problem is a min-weight full bipartite matching on a sparse matrix
with at most k + 1 entries per row, and a constant added to one rider's every entry does
not change the answer: the rider's wait credit goes onto its unmatched column instead of
being subtracted from each driver's. Edges that could never beat staying unmatched are
dropped before solving.

Methods (loadtest/bench/solve.py measures them; docs/benchmarks.md has the figures):
- "sparse" (default): scipy's LAPJVsp (min_weight_full_bipartite_matching) per
  connected group of riders and drivers; no dense matrix is ever built.
- "groups": scipy's dense linear_sum_assignment per connected group, for groups whose
  matrix stays within MAX_DENSE_CELLS; larger groups go to "sparse".
- "flow": OR-Tools' min cost flow over the whole window (costs in tenths of a second).
A rider with a single candidate and no competitor (a group of one) is settled without
calling a solver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching

from dispatch.domain.assignment import Edge, Objective

Method = Literal["sparse", "groups", "flow"]
METHODS: tuple[Method, ...] = ("sparse", "groups", "flow")
# A group's dense matrix (riders x (drivers + riders)) is built only up to this many
# cells (8 MB of float64); beyond, the group is solved sparse.
MAX_DENSE_CELLS = 1_000_000
_NO_EDGE = 1e12  # a dense cell without an edge: never chosen while a finite one exists


def solve(
    objective: Objective,
    waited_ms: Mapping[str, float],
    edges: Sequence[Edge],
    method: Method = "sparse",
) -> dict[str, str]:
    """The optimal rider -> driver pairs among `edges` for the riders of `waited_ms`
    (edges naming other riders are ignored); riders left out stay unmatched."""
    riders = list(waited_ms)
    rider_at = {r: i for i, r in enumerate(riders)}
    drivers: list[str] = []
    driver_at: dict[str, int] = {}
    rows, cols, etas = [], [], []
    for e in edges:
        i = rider_at.get(e.rider)
        if i is None:
            continue
        j = driver_at.get(e.driver)
        if j is None:
            j = driver_at[e.driver] = len(drivers)
            drivers.append(e.driver)
        rows.append(i)
        cols.append(j)
        etas.append(e.eta_s)
    credit = np.array([objective.credit_s(waited_ms[r]) for r in riders], dtype=np.float64)
    match = solve_arrays(
        objective.penalty_s,
        credit,
        len(drivers),
        np.array(rows, dtype=np.int64),
        np.array(cols, dtype=np.int64),
        np.array(etas, dtype=np.float64),
        method,
    )
    return {riders[i]: drivers[j] for i, j in enumerate(match.tolist()) if j >= 0}


def solve_arrays(
    penalty_s: float,
    credit_s: np.ndarray,
    n_drivers: int,
    rows: np.ndarray,
    cols: np.ndarray,
    eta_s: np.ndarray,
    method: Method = "sparse",
) -> np.ndarray:
    """Per rider (len(credit_s) of them), the index of its driver or -1. Edge i joins
    rider rows[i] and driver cols[i] at eta_s[i]; duplicate pairs keep their lowest ETA."""
    n_riders = len(credit_s)
    match = np.full(n_riders, -1, dtype=np.int64)
    keep = eta_s - credit_s[rows] < penalty_s  # anything else loses to staying unmatched
    rows, cols, eta_s = rows[keep], cols[keep], eta_s[keep]
    if len(rows) == 0:
        return match
    rows, cols, eta_s = _lowest_per_pair(rows, cols, eta_s, n_drivers)
    if method == "flow":
        return _solve_flow(penalty_s, credit_s, n_drivers, rows, cols, eta_s, match)
    n_groups, label = connected_components(
        coo_matrix(
            (np.ones(len(rows)), (rows, n_riders + cols)),
            shape=(n_riders + n_drivers, n_riders + n_drivers),
        ),
        directed=False,
    )
    group = label[rows]
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(n_groups + 1))
    for g in range(n_groups):
        sel = order[bounds[g] : bounds[g + 1]]
        if len(sel) == 0:
            continue  # a rider or driver without edges
        r, c, eta = rows[sel], cols[sel], eta_s[sel]
        if len(sel) == 1:
            match[r[0]] = c[0]  # one rider, one driver, and the edge beats the penalty
            continue
        ur, ri = np.unique(r, return_inverse=True)
        uc, ci = np.unique(c, return_inverse=True)
        dense = method == "groups" and len(ur) * (len(uc) + len(ur)) <= MAX_DENSE_CELLS
        solver = _group_dense if dense else _group_sparse
        picked = solver(penalty_s + credit_s[ur], len(uc), ri, ci, eta)
        won = picked >= 0
        match[ur[won]] = uc[picked[won]]
    return match


def _lowest_per_pair(
    rows: np.ndarray, cols: np.ndarray, eta: np.ndarray, n_drivers: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pair = rows * max(n_drivers, 1) + cols
    order = np.lexsort((eta, pair))
    first = np.ones(len(order), dtype=bool)
    first[1:] = pair[order][1:] != pair[order][:-1]
    sel = order[first]
    return rows[sel], cols[sel], eta[sel]


def _group_sparse(
    stay: np.ndarray, n_drivers: int, ri: np.ndarray, ci: np.ndarray, eta: np.ndarray
) -> np.ndarray:
    """`stay`: each rider's cost of staying unmatched, credit included (shifted: its
    driver costs are plain ETAs). Entries must be positive for LAPJVsp (a zero would read
    as no edge), so everything moves up by one constant."""
    n = len(stay)
    shift = 1.0 - min(float(eta.min()), float(stay.min()), 0.0)
    data = np.concatenate([eta + shift, stay + shift])
    r = np.concatenate([ri, np.arange(n)])
    c = np.concatenate([ci, n_drivers + np.arange(n)])
    m = csr_matrix((data, (r, c)), shape=(n, n_drivers + n))
    _, picked = min_weight_full_bipartite_matching(m)
    return np.where(picked < n_drivers, picked, -1)


def _group_dense(
    stay: np.ndarray, n_drivers: int, ri: np.ndarray, ci: np.ndarray, eta: np.ndarray
) -> np.ndarray:
    n = len(stay)
    cost = np.full((n, n_drivers + n), _NO_EDGE)
    cost[ri, ci] = eta
    cost[np.arange(n), n_drivers + np.arange(n)] = stay
    _, picked = linear_sum_assignment(cost)
    return np.where(picked < n_drivers, picked, -1)


def _solve_flow(
    penalty_s: float,
    credit_s: np.ndarray,
    n_drivers: int,
    rows: np.ndarray,
    cols: np.ndarray,
    eta_s: np.ndarray,
    match: np.ndarray,
) -> np.ndarray:
    """Min cost flow: source -> rider (1) -> driver (1) -> sink, or rider -> sink at its
    stay-unmatched cost. Integer costs in tenths of a second."""
    from ortools.graph.python import min_cost_flow  # optional: only this method needs it

    n = len(credit_s)
    src, sink = n + n_drivers, n + n_drivers + 1
    flow = min_cost_flow.SimpleMinCostFlow()
    stay = np.rint((penalty_s + credit_s) * 10).astype(np.int64)
    tails = np.concatenate([np.full(n, src), rows, n + np.arange(n_drivers), np.arange(n)])
    heads = np.concatenate([np.arange(n), n + cols, np.full(n_drivers, sink), np.full(n, sink)])
    costs = np.concatenate(
        [
            np.zeros(n, np.int64),
            np.rint(eta_s * 10).astype(np.int64),
            np.zeros(n_drivers, np.int64),
            stay,
        ]
    )
    caps = np.ones(len(tails), dtype=np.int64)
    first_pair = n
    flow.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    flow.set_nodes_supplies(np.array([src, sink]), np.array([n, -n]))
    if flow.solve() != flow.OPTIMAL:
        raise RuntimeError("min cost flow found no optimum")
    arcs = np.arange(first_pair, first_pair + len(rows))
    used = flow.flows(arcs) > 0
    match[rows[used]] = cols[used]
    return match
