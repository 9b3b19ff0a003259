import torch
import torch.nn.functional as F

from llmrec.classic.data import Triples
from llmrec.classic.lightgcn import LightGCN
from llmrec.classic.methods.ifru import (
    AffectedRows,
    IfruConfig,
    affected_nodes,
    conjugate_gradient,
    influence_update,
    node_importance,
)
from llmrec.classic.mf import MatrixFactorization


def triples(users, items, labels):
    return Triples(torch.tensor(users), torch.tensor(items), torch.tensor(labels, dtype=torch.float64))


def test_conjugate_gradient_solves_a_damped_spd_system():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=g, dtype=torch.float64)
    h, b = m @ m.T + 0.1 * torch.eye(6, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    x, info = conjugate_gradient(lambda v: h @ v, b, damping=0.5, iterations=50, tolerance=1e-12)
    assert torch.allclose(x, torch.linalg.solve(h + 0.5 * torch.eye(6, dtype=torch.float64), b), atol=1e-9)
    assert info["cg_iterations"] <= 7


def test_importance_spreads_removed_share_over_hops_and_pruning_keeps_the_top():
    edges = torch.tensor([[0, 0, 1, 2], [0, 1, 1, 2]])  # users 0,1,2; items 0,1,2
    removed = torch.tensor([[0], [0]])  # user 0's rating of item 0
    hop0 = node_importance(edges, removed, 3, 3, k_hop=0)
    # degrees with self-loops: user0 3, item0 2 -> 1/3 and 1/2; nothing else touched
    assert torch.allclose(hop0, torch.tensor([1 / 3, 0, 0, 1 / 2, 0, 0]))
    hop1 = node_importance(edges, removed, 3, 3, k_hop=1)
    assert hop1[1] == 0 and hop1[2] == 0 and hop1[5] == 0  # user 1 and the user0-free part are 2 hops away
    assert torch.isclose(hop1[4], torch.tensor(1 / 3 / 3))  # item 1 (degree 3) hears from user 0 only
    assert set(affected_nodes(hop1, 0.0).tolist()) == {0, 3, 4}
    assert set(affected_nodes(hop1, 0.9).tolist()) == {torch.argmax(hop1).item()}


def direct_update(model, old_graph, new_graph, rows, removed, retained, n, weight_decay, damping):
    """Δ from an explicitly formed Hessian, with the same g: what CG must reproduce."""
    def bce(module, flat, data):
        scores = torch.func.functional_call(module, rows.parameters(flat), (data.users, data.items))
        return F.binary_cross_entropy_with_logits(scores, data.labels, reduction="sum")

    def influence(flat):
        total = bce(old_graph, flat, removed)
        if new_graph is not old_graph:
            total = total + bce(old_graph, flat, retained) - bce(new_graph, flat, retained)
        return total / n

    def objective(flat):
        return bce(new_graph, flat, retained) / n + 0.5 * weight_decay * flat.square().sum()

    g = torch.func.grad(influence)(rows.flat)
    hessian = torch.autograd.functional.hessian(objective, rows.flat)
    return torch.linalg.solve(hessian + damping * torch.eye(len(g), dtype=g.dtype), g)


def test_the_cg_update_matches_a_direct_solve_of_the_formed_hessian():
    torch.manual_seed(0)
    data = triples([0, 0, 1, 1, 2, 2, 3], [0, 1, 1, 2, 0, 2, 1], [1, 0, 1, 1, 0, 1, 0])
    removed, retained = data.subset(data.users == 0), data.subset(data.users != 0)
    # ("mf", narrow): rows that some retained samples do not touch, which the MF solve leaves out of H exactly
    for graph, users, items in (("mf", [0, 1, 2], [0, 1]), ("mf", [0, 1], [0]), ("lightgcn", [0, 1, 2], [0, 1])):
        if graph == "mf":
            model = MatrixFactorization(4, 3, dim=3).double()
            new_graph = model
        else:
            model = LightGCN(4, 3, torch.stack([data.users, data.items]), dim=3, layers=1).double()
            new_graph = LightGCN(4, 3, torch.stack([retained.users, retained.items]), dim=3, layers=1).double()
            new_graph.load_state_dict({k: v for k, v in model.state_dict().items() if k != "edges"}, strict=False)
        rows = AffectedRows(model, torch.tensor(users), torch.tensor(items))
        config = IfruConfig(damping=1e-3, cg_iterations=200, cg_tolerance=1e-12)
        delta, info = influence_update(model, new_graph, rows, removed, retained, n=len(data), weight_decay=0.1,
                                       config=config)
        expected = direct_update(model, model, new_graph, rows, removed, retained, len(data), 0.1, 1e-3)
        assert torch.allclose(delta, expected, atol=1e-8), (graph, users, items)
        assert delta.abs().max() > 1e-3  # a real step, not a no-op


def test_rows_write_moves_only_the_affected_rows():
    torch.manual_seed(0)
    model = MatrixFactorization(4, 3, dim=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = AffectedRows(model, torch.tensor([1]), torch.tensor([2]))
    rows.write(rows.flat + 1.0)
    after = model.state_dict()
    assert torch.allclose(after["user.weight"][1], before["user.weight"][1] + 1)
    assert torch.equal(after["user.weight"][[0, 2, 3]], before["user.weight"][[0, 2, 3]])
    assert torch.equal(after["item.weight"][:2], before["item.weight"][:2])
    assert torch.equal(after["bias"], before["bias"])
