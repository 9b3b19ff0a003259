"""IFRU (Zhang et al., "Recommendation Unlearning via Influence Function", ACM TORS 2024).

One Newton-style step instead of retraining: θ_A ← θ_A + Δ with Δ ≈ (H + δI)⁻¹ b, where
- A are the embedding and bias rows of the users and items the removed interactions touch, widened by
  `k_hop` hops over the training graph. For LightGCN the widened set is pruned by a degree-based importance
  score (nodes above its 40% quantile); MF keeps every node (reference `ifru_mf_*.py`: `nei_weights > 0`,
  `ifru_lightgcn_*.py`: `nei_weights > quantile_info[3]`). A user or item the removed data touch directly is
  never pruned: the reference concatenates them to the kept set and then overwrites that line (`all_nei_ui =
  neighbor_set`), so there a touched node scoring below the quantile is dropped; here it always moves.
- b (`gradient: removed`, the reference) = (1/n)·∇_A [Σ_removed ℓ(θ; G) + Σ_retained ℓ(θ; G) − Σ_retained ℓ(θ; G′)]:
  the removed samples' own influence plus, for LightGCN, the spillover — how the loss of the remaining
  interactions changes when the removed edges leave the graph G (G′ = G without them; for MF they cancel).
  It equals −∇L_ret(θ) only if θ is a stationary point of the training objective. `gradient:
  retained_objective` takes b = −∇_A L_ret(θ) itself: a Newton step on the retained objective from the trained
  parameters, whatever the training's residual gradient (recorded as `stationarity` = |∇L_full| / |b_removed|).
- H is the Hessian, on A, of the retained objective L_ret(θ) = (1/n)·Σ_retained ℓ(θ; G′) + (λ/2)|θ|², applied
  through Hessian-vector products (double backward); the reference's is of the mean loss over the whole
  training set, removed samples included (its regs = 0, so no λ; for LightGCN, of the un-propagated dot
  product). n is the original's training-set size, as in the reference (θ + H⁻¹·∇(removed loss)/n); the
  retrain divides by the retained size, so the step targets the influence-function objective, whose λ weighs
  n/n_retained less than the retrain's.

Solve (differs from the reference). The reference minimises ½pᵀHp − bᵀp by Adam (lr 1e4–2e4, up to 5000
steps) and keeps the iterate with the best validation AUC; no damping (δ = 0), no bound on the step. Here
Steihaug–Toint truncated CG (Nocedal & Wright, Numerical Optimization, 2nd ed., Algorithm 7.2) minimises that
quadratic within a trust radius |Δ| ≤ r: along a direction of negative curvature of H + δI the step stops on
the boundary instead of running off (the plain CG this replaced, on ML-100K MF with 2% of the interactions
forgotten and no pruning: |Δ| 76, test AUC 0.696 → 0.683). r starts at `trust_radius`·|θ_A| (reference: no
radius): no step longer than the rows it moves. The step is accepted if the function the quadratic models
falls by at least ¼ of the predicted decrease (Algorithm 4.1 shrinks the radius below that ratio); otherwise
the radius shrinks to the norm of the previous CG iterate (each iterate is the solve at its own norm, Theorem
7.3), then ×¼ along the first CG direction. That function is L_ret for `retained_objective`; for `removed` it
is L_ret(θ + Δ) − ∇L_full(θ)ᵀΔ, the retained objective of the training objective tilted so that θ is its exact
minimiser (the influence function's premise; at a stationary θ the two coincide). What happened — negative
curvature, boundary, radii, shrinks, CG iterations, predicted and actual decrease, the change of L_ret itself
— is returned and lands in the manifest's `steps`.

Damping (reference: 0): a forgotten user's row keeps no data term, so its curvature is only the weight decay
λ and the exact step moves it by b/(λ + δ). A δ above λ shrinks that step to a fraction λ/(λ + δ) and the
user is barely forgotten (on ML-100K MF with λ = 1e-4: forget-set JSD to retrain 0.021 at δ = 1e-3, 0.0048
at δ = 1e-5).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch.func import functional_call

from llmrec.classic.lightgcn import LightGCN
from llmrec.classic.train import graph_edges
from llmrec.config import option
from llmrec.errors import LlmrecError
from llmrec.unlearn.registry import CLASSIC, register

LIGHTGCN_PRUNE_QUANTILE = 0.4  # reference ifru_lightgcn_*.py: quantile_info[3], the 40% quantile
ACCEPT_RATIO = 0.25  # accept a step whose actual decrease is at least this share of the predicted (N&W Alg. 4.1: ρ < ¼
# is where a trust-region method shrinks the radius; on ML-100K MF, forget JSD moved < 4e-4 for η from 0.25 to 0.75)
SHRINK_ATTEMPTS = 12  # radius shrinks (×¼ each) before giving up and leaving θ unchanged


@dataclass
class IfruConfig:
    k_hop: int = option(1, "hops over the training graph from the touched users/items that may move", ge=0)
    prune_quantile: float | None = option(
        None, "keep affected nodes whose importance is at or above this quantile; the directly touched users and "
        "items are always kept (null: the reference's rule, 0 = no pruning for MF, 0.4 for LightGCN)", ge=0, le=1)
    gradient: Literal["removed", "retained_objective"] = option(
        "removed", "removed: the removed data's influence gradient (the reference; exact only at a stationary "
        "trained model) | retained_objective: a Newton step on the retained objective's actual gradient at the "
        "trained parameters")
    damping: float = option(1e-5, "δ added to the Hessian's diagonal (reference: 0); keep it well below the "
                                  "training weight decay (see the module docstring)", ge=0)
    trust_radius: float = option(1.0, "initial trust radius as a multiple of |θ_A|, the norm of the rows that move "
                                      "(reference: none); shrunk ×¼ until the modelled objective falls as predicted",
                                 gt=0)
    cg_iterations: int = option(100, "conjugate-gradient iterations at most per solve", ge=1)
    cg_tolerance: float = option(1e-2, "stop when the residual norm falls below this share of |b|", gt=0)


def boundary_steps(x: torch.Tensor, d: torch.Tensor, radius: float) -> tuple[float, float]:
    """Both τ with |x + τd| = radius (|x| ≤ radius), smaller first."""
    a, b, c = float(d @ d), 2 * float(x @ d), float(x @ x) - radius ** 2
    root = math.sqrt(max(b * b - 4 * a * c, 0.0))
    aux = b + math.copysign(root, b)  # the cancellation-free pair of roots (scipy's get_boundaries_intersections)
    if aux == 0:
        return 0.0, 0.0
    return tuple(sorted((-aux / (2 * a), -2 * c / aux)))


def steihaug_cg(hvp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, radius: float, damping: float = 0.0,
                iterations: int = 100, tolerance: float = 1e-6, path: list | None = None) -> tuple[torch.Tensor, dict]:
    """Minimise m(x) = −bᵀx + ½xᵀ(H + δI)x over |x| ≤ radius by Steihaug–Toint truncated CG.

    Nocedal & Wright, Numerical Optimization (2nd ed.), Algorithm 7.2; H symmetric, known only through H·v,
    and may be indefinite. Inside the radius with H + δI positive definite this is plain CG for
    (H + δI)x = b, stopping when |b − (H + δI)x| ≤ tolerance·|b|. Along a direction of non-positive
    curvature, or when the next iterate would leave the radius, the step ends on the boundary (of the two
    boundary points on a negative-curvature line, the one with the lower m). Returns x [len(b)] and a dict:
    cg_iterations, cg_relative_residual, negative_curvature, hit_boundary, model_decrease (= −m(x) ≥ 0).
    A `path` list receives (iterate, its model decrease) at every iterate, the returned x last; their norms
    increase (N&W Theorem 7.3), so the iterate of norm ρ is what a radius ρ would have returned.
    """
    x = torch.zeros_like(b)
    residual = b.clone()  # b − (H + δI)x = −∇m(x)
    direction = residual.clone()
    rs = residual @ residual
    target = (tolerance * b.norm()) ** 2
    model = 0.0  # m(x), updated exactly along each segment: m(x + τd) = m(x) − τ rᵀd + ½τ² dᵀ(H + δI)d
    steps, negative, boundary = 0, False, False
    while steps < iterations and rs > target:
        steps += 1
        product = hvp(direction) + damping * direction
        curvature = float(direction @ product)
        slope = float(residual @ direction)
        step = float(rs) / curvature if curvature > 0 else math.inf
        if curvature <= 0 or float((x + step * direction).norm()) >= radius:
            negative = curvature <= 0
            if math.isinf(radius):  # no boundary to go to: keep the last point of descent (truncated Newton)
                break
            candidates = boundary_steps(x, direction, radius)
            if not negative:
                candidates = candidates[1:]  # the forward crossing
            values = [model - tau * slope + 0.5 * tau * tau * curvature for tau in candidates]
            best = min(range(len(candidates)), key=values.__getitem__)
            x, model, boundary = x + candidates[best] * direction, values[best], True
            residual = residual - candidates[best] * product
            rs = residual @ residual
            if path is not None:
                path.append((x, -model))
            break
        model = model - step * slope + 0.5 * step * step * curvature
        x = x + step * direction
        if path is not None:
            path.append((x, -model))
        residual = residual - step * product
        new_rs = residual @ residual
        direction = residual + (new_rs / rs) * direction
        rs = new_rs
    return x, {"cg_iterations": steps, "cg_relative_residual": float(rs.sqrt() / b.norm().clamp_min(1e-30)),
               "negative_curvature": negative, "hit_boundary": boundary, "model_decrease": -model}


def node_importance(edges: torch.Tensor, removed: torch.Tensor, num_users: int, num_items: int,
                    k_hop: int) -> torch.Tensor:
    """IFRU's degree-based importance of every node (users, then items) for a set of removed edges.

    Hop 0: the share of a node's degree (self-loop included) that is removed; each further hop spreads it to
    neighbours as s ← D⁻¹(A + I)s. Nodes outside k_hop hops score 0. Reference: `compute_neighbor_influence_clip`.
    """
    size = num_users + num_items
    loops = torch.arange(size)
    rows = torch.cat([edges[0], edges[1] + num_users, loops])
    cols = torch.cat([edges[1] + num_users, edges[0], loops])
    adjacency = torch.sparse_coo_tensor(torch.stack([rows, cols]), torch.ones(len(rows)), (size, size),
                                        check_invariants=True).coalesce()
    degree = torch.zeros(size).index_add_(0, rows, torch.ones(len(rows)))
    touched = torch.cat([removed[0], removed[1] + num_users])
    score = torch.zeros(size).index_add_(0, touched, torch.ones(len(touched))) / degree
    for _ in range(k_hop):
        score = torch.sparse.mm(adjacency, score.unsqueeze(1)).squeeze(1) / degree
    return score


def affected_nodes(score: torch.Tensor, quantile: float, touched: torch.Tensor | None = None) -> torch.Tensor:
    """Sorted node ids: positive importance at or above the `quantile` of the positive scores, plus `touched`.

    `touched` (node ids as in `score`: users, then items offset by the user count) are kept whatever they score.
    """
    positive = score[score > 0]
    keep = score > 0
    if quantile > 0 and len(positive) > 0:
        keep = score >= torch.quantile(positive, quantile)
    if touched is not None:
        keep[touched] = True
    return torch.nonzero(keep).squeeze(1)


class AffectedRows:
    """The embedding and bias rows of the affected users and items as one flat vector θ_A."""

    def __init__(self, model, users: torch.Tensor, items: torch.Tensor):
        self.model, self.users, self.items = model, users, items
        pieces = [model.user.weight[users], model.user_bias.weight[users], model.item.weight[items],
                  model.item_bias.weight[items]]
        self.shapes = [p.shape for p in pieces]
        self.flat = torch.cat([p.detach().reshape(-1) for p in pieces])

    def parameters(self, flat: torch.Tensor) -> dict:
        """All of the model's parameters, with θ_A taken from `flat` (differentiably)."""
        parts = [part.reshape(shape) for part, shape in
                 zip(flat.split([math.prod(s) for s in self.shapes]), self.shapes)]
        model = self.model
        return {"user.weight": model.user.weight.detach().index_put((self.users,), parts[0]),
                "user_bias.weight": model.user_bias.weight.detach().index_put((self.users,), parts[1]),
                "item.weight": model.item.weight.detach().index_put((self.items,), parts[2]),
                "item_bias.weight": model.item_bias.weight.detach().index_put((self.items,), parts[3]),
                "bias": model.bias.detach()}

    def write(self, flat: torch.Tensor) -> None:
        params = self.parameters(flat.detach())
        with torch.no_grad():
            for name, value in params.items():
                self.model.get_parameter(name).copy_(value)


def summed_bce(module, params: dict, triples) -> torch.Tensor:
    scores = functional_call(module, params, (triples.users, triples.items))
    return F.binary_cross_entropy_with_logits(scores, triples.labels, reduction="sum")


def retained_objective(graph, rows: AffectedRows, retained, n: int, weight_decay: float, flat: torch.Tensor,
                       exact: bool = False) -> torch.Tensor:
    """L_ret on θ_A = flat (up to the constant penalty of the rows that do not move); `exact` sums in float64."""
    scores = functional_call(graph, rows.parameters(flat), (retained.users, retained.items))
    losses = F.binary_cross_entropy_with_logits(scores, retained.labels, reduction="none")
    if exact:
        return losses.double().sum() / n + 0.5 * weight_decay * flat.double().square().sum()
    return losses.sum() / n + 0.5 * weight_decay * flat.square().sum()


@dataclass
class InfluenceSystem:
    """The quadratic model −bᵀΔ + ½Δᵀ(H + δI)Δ around θ_A and the function it is the Taylor model of."""

    b: torch.Tensor  # [len(θ_A)]: the removed influence gradient, or −∇L_ret (`gradient` option)
    hvp: Callable[[torch.Tensor], torch.Tensor]  # v ↦ H·v, H the Hessian of L_ret on θ_A
    retained: Callable[[torch.Tensor], float]  # Δ ↦ L_ret(θ_A + Δ) (float64 sums), up to a constant
    tilt: torch.Tensor  # [len(θ_A)]: the modelled function is L_ret(θ_A + Δ) − tiltᵀΔ
    stationarity: float  # |∇L_full(θ)| / |removed gradient|: 0 for a training run that reached a stationary point


def influence_system(old_graph, new_graph, rows: AffectedRows, removed, retained, n: int, weight_decay: float,
                     gradient: str = "removed") -> InfluenceSystem:
    """b, H·v and L_ret of the module docstring on the rows θ_A; `new_graph is old_graph` for MF.

    With `gradient: removed` the model's linear term is −b = ∇L_ret(θ) − ∇L_full(θ), so it models
    L_ret(θ + Δ) − ∇L_full(θ)ᵀΔ: the retained objective of the tilted training objective L_full(θ′) − ∇L_full(θ)ᵀθ′,
    which θ minimises exactly (the influence function's premise); `tilt` = ∇L_full(θ), the training's residual
    gradient. With `retained_objective` the model is of L_ret itself (`tilt` = 0).
    """
    if new_graph is old_graph:  # MF: only samples with an affected user or item depend on θ_A
        retained = retained.subset(torch.isin(retained.users, rows.users) | torch.isin(retained.items, rows.items))
    theta = rows.flat.clone().requires_grad_(True)
    params = rows.parameters(theta)
    influence = summed_bce(old_graph, params, removed)
    if new_graph is not old_graph:  # spillover: the retained loss moves when removed edges leave the graph
        influence = influence + summed_bce(old_graph, params, retained) - summed_bce(new_graph, params, retained)
    removed_gradient = torch.autograd.grad(influence / n, theta)[0]

    retained_gradient = torch.autograd.grad(retained_objective(new_graph, rows, retained, n, weight_decay, theta),
                                            theta, create_graph=True)[0]

    def hvp(vector: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(retained_gradient, theta, vector, retain_graph=True)[0]

    def retained_value(delta: torch.Tensor) -> float:
        with torch.no_grad():
            return float(retained_objective(new_graph, rows, retained, n, weight_decay, rows.flat + delta, exact=True))

    full_gradient = retained_gradient.detach() + removed_gradient  # ∇L_full = ∇L_ret + b_removed, spillover included
    stationarity = float(full_gradient.norm() / removed_gradient.norm().clamp_min(1e-30))
    if gradient == "removed":
        return InfluenceSystem(removed_gradient, hvp, retained_value, full_gradient, stationarity)
    return InfluenceSystem(-retained_gradient.detach(), hvp, retained_value, torch.zeros_like(theta), stationarity)


def trust_region_step(system: InfluenceSystem, radius: float, config: IfruConfig) -> tuple[torch.Tensor, dict]:
    """One accepted trust-region step Δ [len(b)] (Nocedal & Wright Algorithm 4.1, a single outer iteration).

    Steihaug–Toint CG within `radius`. A step is kept when the modelled function (L_ret, tilted for
    `gradient: removed`) falls by at least ACCEPT_RATIO of the model's predicted decrease. If the last iterate
    fails, the radius shrinks to the norms of the earlier CG iterates, largest first — each is exactly the
    solve at that radius, so no Hessian product is repeated; if even the first fails, the radius goes on
    shrinking ×¼ along the first CG direction. After SHRINK_ATTEMPTS such shrinks Δ = 0 with `accepted: false`.
    The dict records the solve: radii, CG iterations, curvature, predicted and actual decrease, and the change
    of L_ret itself (`retained_decrease`).
    """
    before = system.retained(torch.zeros_like(system.b))
    record = {"gradient_norm": float(system.b.norm()), "stationarity": system.stationarity,
              "damping": config.damping, "initial_trust_radius": radius, "cg_iterations_total": 0,
              "negative_curvature_seen": False, "radius_shrinks": 0}

    def judge(delta: torch.Tensor, predicted: float) -> bool:
        retained_decrease = before - system.retained(delta)
        actual = retained_decrease + float(system.tilt.double() @ delta.double())
        ratio = actual / predicted if predicted > 0 else 0.0
        record.update(trust_radius=radius, predicted_decrease=predicted,
                      actual_decrease=actual, retained_decrease=retained_decrease, ratio=ratio)
        return ratio >= ACCEPT_RATIO or float(delta.norm()) == 0.0

    def solve(within: float, path: list | None = None) -> tuple[torch.Tensor, float]:
        delta, info = steihaug_cg(system.hvp, system.b, within, config.damping, config.cg_iterations,
                                  config.cg_tolerance, path)
        predicted = info.pop("model_decrease")
        record.update(info, cg_iterations_total=record["cg_iterations_total"] + info["cg_iterations"],
                      negative_curvature_seen=record["negative_curvature_seen"] or info["negative_curvature"])
        return delta, predicted

    path = []
    solve(radius, path)
    for count, (delta, predicted) in enumerate(reversed(path)):
        if count > 0:
            radius = float(delta.norm())
            record["radius_shrinks"] = count
        if judge(delta, predicted):
            return delta.detach(), {**record, "accepted": True}
    radius = float(path[0][0].norm()) if path else radius
    for _ in range(SHRINK_ATTEMPTS):
        radius /= 4
        record["radius_shrinks"] += 1
        delta, predicted = solve(radius)
        if judge(delta, predicted):
            return delta.detach(), {**record, "accepted": True}
    return torch.zeros_like(system.b), {**record, "accepted": False}


def influence_update(old_graph, new_graph, rows: AffectedRows, removed, retained, n: int, weight_decay: float,
                     config: IfruConfig) -> tuple[torch.Tensor, dict]:
    """Δθ_A [len(rows.flat)] from θ_A: `trust_region_step` on `influence_system`, radius trust_radius·|θ_A|."""
    system = influence_system(old_graph, new_graph, rows, removed, retained, n, weight_decay, config.gradient)
    delta, record = trust_region_step(system, config.trust_radius * float(rows.flat.norm()), config)
    return delta, {"gradient": config.gradient, **record}


def quantile_in_force(config: IfruConfig, model) -> float:
    """The quantile in force: the configured one, or the reference's for the backbone (0 for MF, 0.4 for LightGCN)."""
    if config.prune_quantile is not None:
        return config.prune_quantile
    return LIGHTGCN_PRUNE_QUANTILE if isinstance(model, LightGCN) else 0.0


@register("ifru", families=CLASSIC, config=IfruConfig)
def ifru(work, config: IfruConfig) -> dict:
    training = work.training.train
    if training.optimizer != "adam" or work.model.link != "sigmoid":
        raise LlmrecError("ifru differentiates the BCE objective: forget from an Adam-trained model (train.optimizer=adam)")
    model = work.model
    num_users, num_items = work.sizes
    started = time.perf_counter()
    removed = graph_edges(work.forget)
    score = node_importance(graph_edges(work.train), removed, num_users, num_items, config.k_hop)
    quantile = quantile_in_force(config, model)
    touched = torch.unique(torch.cat([removed[0], removed[1] + num_users]))
    nodes = affected_nodes(score, quantile, touched)
    rows = AffectedRows(model, nodes[nodes < num_users], nodes[nodes >= num_users] - num_users)
    new_graph = model
    if isinstance(model, LightGCN):
        new_graph = copy.deepcopy(model)
        new_graph.set_edges(graph_edges(work.retained))
    selected = time.perf_counter()
    delta, solve = influence_update(model, new_graph, rows, work.forget, work.retained, len(work.train),
                                    training.weight_decay, config)
    if not solve["accepted"]:
        print("ifru: the retained objective rose at every trust radius; the rows were left unchanged")
    rows.write(rows.flat + delta)
    if isinstance(model, LightGCN):
        model.set_edges(graph_edges(work.retained))
    done = time.perf_counter()
    return {"model": model, "timings": {"select_seconds": selected - started, "solve_seconds": done - selected},
            "steps": {"affected_users": len(rows.users), "affected_items": len(rows.items),
                      "touched_users": int((touched < num_users).sum()),
                      "touched_items": int((touched >= num_users).sum()), "prune_quantile": quantile,
                      "update_norm": float(delta.norm()), **solve},
            "trainable_parameters": rows.flat.numel()}
