import torch

from llmrec.classic.mf import MatrixFactorization, als_half_sweep, als_objective, als_sweep


def test_score_is_dot_product_plus_biases():
    torch.manual_seed(0)
    model = MatrixFactorization(3, 4, dim=5)
    with torch.no_grad():
        model.user_bias.weight.normal_()
        model.item_bias.weight.normal_()
        model.bias.fill_(0.3)
    users, items = torch.tensor([0, 2]), torch.tensor([3, 1])
    expected = torch.stack([model.user.weight[u] @ model.item.weight[i] + model.user_bias.weight[u, 0]
                            + model.item_bias.weight[i, 0] + 0.3 for u, i in zip(users, items)])
    assert torch.allclose(model(users, items), expected)
    assert torch.allclose(model.probability(model(users, items)), torch.sigmoid(expected))


def test_als_half_sweep_is_each_rows_weighted_ridge_solution():
    g = torch.Generator().manual_seed(0)
    fixed = torch.randn(6, 3, generator=g, dtype=torch.float64)
    confidence = torch.rand(4, 6, generator=g, dtype=torch.float64) * 3
    target = torch.randn(4, 6, generator=g, dtype=torch.float64)
    solved = als_half_sweep(fixed, confidence, target, reg=0.5, chunk=3)  # chunks of 3 and 1 rows
    for r in range(4):
        weights = torch.diag(confidence[r])
        direct = torch.linalg.solve(fixed.T @ weights @ fixed + 0.5 * torch.eye(3, dtype=torch.float64),
                                    fixed.T @ weights @ target[r])
        assert torch.allclose(solved[r], direct)


def test_als_sweeps_never_raise_the_objective():
    torch.manual_seed(0)
    model = MatrixFactorization(8, 10, dim=4, link="clamp")
    confidence = (torch.rand(8, 10) < 0.5).float() * 5
    preference = (torch.rand(8, 10) < 0.5).float()
    values = [als_objective(model, confidence, preference, 0.3)]
    for _ in range(5):
        als_sweep(model, confidence, preference, 0.3)
        values.append(als_objective(model, confidence, preference, 0.3))
    assert all(later <= earlier + 1e-4 for earlier, later in zip(values, values[1:]))
    assert values[-1] < 0.5 * values[0]
