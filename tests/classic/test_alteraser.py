import torch

from llmrec.classic.data import Triples
from llmrec.classic.losses import regularized_bce
from llmrec.classic.methods.alteraser import AltEraserConfig, block_newton_step, side_step
from llmrec.classic.mf import MatrixFactorization


def retained_objective(model, data, weight_decay):
    with torch.no_grad():
        return float(regularized_bce(model(data.users, data.items), data.labels, model.parameters(), weight_decay))


def small_problem():
    g = torch.Generator().manual_seed(0)
    users = torch.randint(0, 6, (80,), generator=g)
    items = torch.randint(0, 5, (80,), generator=g)
    labels = (torch.rand(80, generator=g) < 0.6).float()
    torch.manual_seed(0)
    return MatrixFactorization(7, 5, dim=3, init_std=0.5), Triples(users, items, labels)  # user 6 has no triples


def test_a_user_step_and_an_item_step_each_lower_the_retained_objective():
    model, data = small_problem()
    config = AltEraserConfig()
    values = [retained_objective(model, data, 0.01)]
    side_step(model, "user", data, 0.01, config, len(data))
    values.append(retained_objective(model, data, 0.01))
    side_step(model, "item", data, 0.01, config, len(data))
    values.append(retained_objective(model, data, 0.01))
    assert values[1] < values[0] and values[2] < values[1]


def test_a_user_without_retained_triples_goes_to_zero_in_one_step():
    model, data = small_problem()
    side_step(model, "user", data, 0.01, AltEraserConfig(), len(data))
    assert torch.allclose(model.user.weight[6], torch.zeros(3), atol=1e-6) and abs(model.user_bias.weight[6, 0]) < 1e-6


def test_block_newton_steps_reach_each_blocks_minimum():
    model, data = small_problem()
    own = torch.cat([model.user.weight, model.user_bias.weight], 1).detach().double()
    features = torch.cat([model.item.weight[data.items], torch.ones(len(data), 1)], 1).detach().double()
    offset = torch.zeros(len(data), dtype=torch.float64)
    labels = data.labels.double()
    for _ in range(8):
        own = block_newton_step(own, features, data.users, offset, labels, len(data), 0.01)
    own.requires_grad_(True)
    scores = (own[data.users] * features).sum(-1)
    objective = torch.nn.functional.binary_cross_entropy_with_logits(scores, labels, reduction="sum") / len(data) \
        + 0.005 * own.square().sum()
    (gradient,) = torch.autograd.grad(objective, own)
    assert gradient.abs().max() < 1e-10
