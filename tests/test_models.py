import pytest
import torch

from engine.models import MLP, build_model, count_params


@pytest.mark.parametrize("width, params", [(128, 150_145), (256, 398_593), (512, 1_190_401), (1024, 3_953_665)])
def test_parameter_counts_match_the_papers_table_1(make_spec, width, params):
    assert count_params(build_model(make_spec(model__width=width))) == params


def test_he_normal_init_and_zero_biases(make_spec):
    model = build_model(make_spec(model__width=512))
    first = model.layers[0]
    assert torch.all(first.bias == 0)
    assert first.weight.std().item() == pytest.approx((2 / 784) ** 0.5, rel=0.02)
    assert model.layers[1].weight.std().item() == pytest.approx((2 / 512) ** 0.5, rel=0.02)


def test_same_seed_same_init_other_seed_differs(make_spec):
    a = build_model(make_spec(train__seeds=[3]))
    b = build_model(make_spec(train__seeds=[3]))
    c = build_model(make_spec(train__seeds=[4]))
    assert torch.equal(a.layers[0].weight, b.layers[0].weight)
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)


def test_mlp_is_softplus_with_the_given_beta():
    model = MLP(2, 3, 1, 1, beta=2.0)
    with torch.no_grad():
        for layer in model.layers:
            layer.weight.fill_(1.0)
            layer.bias.zero_()
    x = torch.tensor([[0.5, -0.25]])
    hidden = torch.nn.functional.softplus(torch.tensor(0.25), beta=2.0)
    assert model(x).item() == pytest.approx(3 * hidden.item())
