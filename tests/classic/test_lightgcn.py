import math

import torch

from llmrec.classic.lightgcn import LightGCN, normalized_adjacency
from llmrec.classic.mf import MatrixFactorization


def test_adjacency_is_symmetrically_normalised_by_degree():
    edges = torch.tensor([[0, 0, 1], [0, 1, 1]])  # user 0 rated items 0 and 1, user 1 rated item 1
    dense = normalized_adjacency(edges, num_users=2, num_items=2).to_dense()
    # node degrees: user0 2, user1 1, item0 1, item1 2
    assert math.isclose(float(dense[0, 2]), 1 / math.sqrt(2 * 1), rel_tol=1e-6)
    assert math.isclose(float(dense[0, 3]), 1 / math.sqrt(2 * 2), rel_tol=1e-6)
    assert math.isclose(float(dense[1, 3]), 1 / math.sqrt(1 * 2), rel_tol=1e-6)
    assert torch.equal(dense, dense.T) and dense[0, 1] == 0 and dense[2, 3] == 0


def test_zero_layers_is_matrix_factorisation_and_the_graph_shapes_the_scores():
    torch.manual_seed(0)
    edges = torch.tensor([[0, 1, 2, 2], [0, 1, 1, 3]])
    flat = LightGCN(3, 4, edges, dim=5, layers=0)
    mf = MatrixFactorization(3, 4, dim=5)
    mf.load_state_dict({k: v for k, v in flat.state_dict().items() if k != "edges"})
    users, items = torch.tensor([0, 1, 2]), torch.tensor([3, 0, 1])
    assert torch.allclose(flat(users, items), mf(users, items))

    deep = LightGCN(3, 4, edges, dim=5, layers=2)
    deep.load_state_dict(flat.state_dict())
    before = deep(users, items)
    deep.set_edges(edges[:, :2])  # user 2 leaves the graph
    assert not torch.allclose(deep(users, items), before)
