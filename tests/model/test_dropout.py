import pytest
import torch

from model.dropout import FastDropout


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_drops_the_right_fraction_and_keeps_the_expectation(p):
    torch.manual_seed(0)
    x = torch.ones(200_001)
    y = FastDropout(p).train()(x)
    assert (y == 0).float().mean().item() == pytest.approx(p, abs=0.01)
    assert y.mean().item() == pytest.approx(1.0, abs=0.02)
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - p)))


def test_identity_in_eval_and_gradient_follows_the_mask():
    d = FastDropout(0.3)
    x = torch.randn(7, 5, requires_grad=True)
    assert torch.equal(d.eval()(x), x)
    y = d.train()(x)
    y.sum().backward()
    assert torch.equal(x.grad == 0, y == 0)


def test_rejects_bad_probability():
    with pytest.raises(ValueError):
        FastDropout(1.0)
