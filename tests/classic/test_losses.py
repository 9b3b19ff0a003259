import math

import torch

from llmrec.classic.losses import regularized_bce


def test_regularized_bce_is_mean_bce_plus_half_decay_times_squared_norm():
    scores, labels = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0])
    params = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    bce = (math.log(2) + math.log(1 + math.exp(2))) / 2
    assert math.isclose(regularized_bce(scores, labels, params, 0.1).item(), bce + 0.05 * 14, rel_tol=1e-6)
    assert math.isclose(regularized_bce(scores, labels, params, 0.0).item(), bce, rel_tol=1e-6)
