"""The first layers against their definitions: SincKAN's formula in float64, an explicit Fourier loop, pykan's own
KANLayer, parameter-count formulas, and independence of the twin critics."""

import math

import pytest
import torch

from core.networks import EnsembleLinear, EnsembleMLP
from ideas.sinckan_critic.layers import (
    FIRST_LAYERS,
    FourierLayer,
    PykanLayer,
    SincLayer,
    make_first_layer,
    matched_width,
    sinc_params,
    useful_range,
)


def sinc64(u: float) -> float:
    return 1.0 if u == 0 else math.sin(math.pi * u) / (math.pi * u)


def sinckan_formula(x, c, alpha, beta, degree, init_h, tanh):
    """y_j = sum_i sum_m sum_k c[i, m, k, j] sinc(t_i / h_m + k) + sum_i x_i alpha[i, j] + beta_j, in float64 Python,
    with t = tanh(x) or x, h_m = 1 / (init_h (1 + m)), k = -floor(d/2) .. ceil(d/2) (shared/reference/kan.md)."""
    in_dim, len_h, _, out_dim = c.shape
    nodes = range(-math.floor(degree / 2), math.ceil(degree / 2) + 1)
    ys = []
    for row in x.tolist():
        y = []
        for j in range(out_dim):
            total = 0.0 if beta is None else float(beta[j])
            for i, xi in enumerate(row):
                t = math.tanh(xi) if tanh else xi
                for m in range(len_h):
                    h = 1.0 / (init_h * (1 + m))
                    for q, k in enumerate(nodes):
                        total += float(c[i, m, q, j]) * sinc64(t / h + k)
                if alpha is not None:
                    total += xi * float(alpha[i, j])
            y.append(total)
        ys.append(y)
    return torch.tensor(ys, dtype=torch.float64)


@pytest.mark.parametrize("degree, len_h, init_h, skip, tanh", [(8, 1, 2.0, True, True), (3, 2, 1.5, False, True),
                                                               (4, 1, 2.0, True, False)])
def test_sinc_layer_equals_the_sinckan_formula_in_float64(degree, len_h, init_h, skip, tanh):
    torch.manual_seed(0)
    layer = SincLayer(2, 3, 4, degree, len_h, init_h, skip, tanh)
    x = torch.randn(2, 5, 3) * 2
    x[0, 0, 0] = 0.0  # sinc(k) at the nodes themselves: exactly 0 or 1
    c, alpha = layer.coefficients()
    c, alpha = c.detach().double(), None if alpha is None else alpha.detach().double()
    beta = None if layer.bias is None else layer.bias.detach().double()[:, 0]
    expected = torch.stack([sinckan_formula(x[m].double(), c[m], None if alpha is None else alpha[m],
                                            None if beta is None else beta[m], degree, init_h, tanh)
                            for m in range(2)])
    assert torch.allclose(layer.double()(x.double()), expected, rtol=1e-12, atol=1e-12)
    assert torch.allclose(layer.float()(x).double(), expected, rtol=1e-5, atol=1e-5)


def test_fourier_layer_equals_an_explicit_loop():
    torch.manual_seed(0)
    layer = FourierLayer(2, 3, 4, frequencies=3)
    x = torch.randn(2, 5, 3) * 2
    w = layer.weight.detach().double().view(2, 3, 7, 4)
    b = layer.bias.detach().double()[:, 0]
    expected = torch.zeros(2, 5, 4, dtype=torch.float64)
    for m in range(2):
        for n in range(5):
            for j in range(4):
                total = float(b[m, j])
                for i in range(3):
                    xi = float(x[m, n, i])
                    total += xi * float(w[m, i, 0, j])
                    for f in range(1, 4):
                        total += math.sin(f * xi) * float(w[m, i, f, j]) + math.cos(f * xi) * float(w[m, i, 3 + f, j])
                expected[m, n, j] = total
    assert torch.allclose(layer(x).double(), expected, rtol=1e-5, atol=1e-5)


def test_pykan_arm_equals_kanlayer_first_output():
    from kan import KANLayer

    torch.manual_seed(0)
    layer = PykanLayer(2, 3, 4, grid=5, k=3)
    x = torch.randn(2, 7, 3)
    out = layer(x)
    for m in range(2):
        reference = KANLayer(3, 4, num=5, k=3, save_plot_data=False)
        reference.load_state_dict(layer.kan[m].state_dict())
        assert torch.equal(out[m], reference(x[m])[0])
    shared = torch.randn(7, 3)
    assert torch.equal(layer(shared.expand(2, 7, 3))[1], layer.kan[1](shared)[0])


def test_pykan_spline_is_zero_outside_its_useful_range():
    torch.manual_seed(0)
    edge = useful_range("pykan", grid=5, k=3)
    assert edge == pytest.approx(2.2)
    layer = PykanLayer(1, 1, 3, grid=5, k=3).kan[0]
    postspline = layer(torch.tensor([[edge - 0.1], [edge + 0.1], [-edge - 0.1]]))[3]
    assert postspline[0].abs().sum() > 0 and postspline[1:].abs().sum() == 0


def test_shared_input_fast_path_equals_per_member_inputs():
    torch.manual_seed(0)
    x = torch.randn(9, 5)
    for layer in (SincLayer(2, 5, 8), FourierLayer(2, 5, 8, 4)):
        assert torch.allclose(layer(x.expand(2, 9, 5)), layer(x.expand(2, 9, 5).contiguous()), atol=1e-6)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize("in_dim, out_dim", [(6, 256), (30, 64)])
def test_parameter_counts_equal_their_formulas(in_dim, out_dim):
    members, d, len_h, freqs, grid, k = 2, 8, 1, 4, 5, 3
    counts = {name: n_params(make_first_layer(name, out_dim, d, len_h, 2.0, True, True, freqs, grid, k)(
        members, in_dim, out_dim)) for name in FIRST_LAYERS}
    width = matched_width(in_dim, out_dim, out_dim, sinc_params(in_dim, out_dim, d, len_h, True))
    assert counts == {
        "linear": members * (in_dim * out_dim + out_dim),
        "linear_matched": members * (in_dim * width + width + width * out_dim + out_dim),
        "fourier": members * (in_dim * (1 + 2 * freqs) * out_dim + out_dim),
        "sinc": members * (in_dim * out_dim * (len_h * (d + 1) + 1) + out_dim),
        "pykan": members * in_dim * out_dim * (grid + k + 2),
    }
    no_skip = SincLayer(members, in_dim, out_dim, degree=4, len_h=2, skip=False)
    assert n_params(no_skip) == members * in_dim * out_dim * 2 * 5


@pytest.mark.parametrize("in_dim, hidden, depth", [(4, 256, 2), (6, 256, 2), (30, 256, 3), (261, 512, 2),
                                                   (6, 64, 1)])
def test_linear_matched_critic_is_within_two_percent_of_the_sinc_critic(in_dim, hidden, depth):
    def critic(name: str) -> EnsembleMLP:
        return EnsembleMLP(2, in_dim, hidden, 1, depth - (name == "linear_matched"),
                           first_layer=make_first_layer(name, hidden))

    matched_critic = critic("linear_matched")
    sinc, matched = n_params(critic("sinc")), n_params(matched_critic)
    assert abs(matched - sinc) / sinc < 0.02
    assert matched_critic.net[0].wide.weight.shape[-1] > hidden  # a wider first hidden layer, same depth
    assert len([m for m in matched_critic.modules() if isinstance(m, EnsembleLinear)]) == depth + 1


@pytest.mark.parametrize("name", FIRST_LAYERS)
@pytest.mark.parametrize("shared", [True, False])
def test_a_loss_on_one_twin_gives_the_other_zero_gradient(name, shared):
    torch.manual_seed(0)
    depth = 1 if name == "linear_matched" else 2
    net = EnsembleMLP(2, 5, 16, 1, depth, first_layer=make_first_layer(name, 16))
    x = torch.randn(8, 5) if shared else torch.randn(2, 8, 5)
    net(x)[0].sum().backward()
    first, second = [], []
    for pname, p in net.named_parameters():
        if not p.requires_grad:
            continue
        grad = torch.zeros_like(p) if p.grad is None else p.grad
        if pname.startswith("net.0.kan."):  # pykan: one KANLayer module per member
            (first if pname.startswith("net.0.kan.0.") else second).append(grad.abs().sum())
        else:  # every other parameter is stacked over members on dim 0
            first.append(grad[0].abs().sum())
            second.append(grad[1].abs().sum())
    assert sum(second) == 0 and sum(first) > 0
