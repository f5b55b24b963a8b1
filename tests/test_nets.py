"""Networks of §4.2.1: shapes, bias-free variants, reflection, receptive fields, FCDD upsampling."""
import math

import pytest
import torch
from torch import nn

from calad_lib.nets import (FCDDNet, build_net, count_bias, default_net, encoder_spec, gaussian_kernel,
                            receptive_field)

pytestmark = pytest.mark.usefixtures("one_thread")


def _n_params(net):
    return sum(p.numel() for p in net.parameters())


def test_lenet28_layout_and_parameter_count_by_hand():
    # [35]'s CNN28: conv 1→16 (5×5), conv 16→32, fc 32·7·7→64, fc 64→32
    weights = 16 * 25 + 32 * 16 * 25 + 32 * 7 * 7 * 64 + 64 * 32
    biases = (16 + 32) + 2 * (16 + 32) + 64 + 2 * 64 + 32  # conv bias, BN affine, fc1, BN1d affine, fc2
    free, full = build_net("lenet28", (1, 28, 28), bias=False), build_net("lenet28", (1, 28, 28))
    assert _n_params(free) == weights
    assert _n_params(full) == weights + biases
    assert free(torch.rand(4, 1, 28, 28)).shape == (4, 32)
    assert build_net("lenet32", (3, 32, 32))(torch.rand(2, 3, 32, 32)).shape == (2, 256)


@pytest.mark.parametrize("name,shape", [("lenet28", (1, 28, 28)), ("lenet32", (3, 32, 32)), ("resnet18", (3, 64, 64))])
def test_bias_free_networks_have_no_bias_and_no_affine_batch_norm(name, shape):
    net = build_net(name, shape, bias=False)
    assert count_bias(net) == 0
    assert not any(n.endswith("bias") for n, _ in net.named_parameters())
    assert all(not m.affine for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    assert count_bias(build_net(name, shape)) > 0
    # no bias: the zero image maps to the zero vector in eval mode with zero running means
    net.eval()
    with torch.no_grad():
        assert net(torch.zeros(1, *shape)).abs().max() == 0


@pytest.mark.parametrize("name,shape", [("ae28", (1, 28, 28)), ("ae32", (1, 32, 32)), ("ae_bergmann", (1, 64, 64)),
                                        ("ae_bergmann", (1, 32, 32))])
def test_autoencoders_reconstruct_the_input_shape_through_a_100d_bottleneck(name, shape):
    net = build_net(name, shape)
    x = torch.rand(2, *shape)
    assert net(x).shape == x.shape
    assert net.encode(x).shape == (2, 100)
    # decoder = reflection: one transposed convolution per convolution, same kernels/strides
    convs = [m for m in net.encoder.modules() if isinstance(m, nn.Conv2d)]
    tconvs = [m for m in net.decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.kernel_size, c.stride) for c in convs] == [(t.kernel_size, t.stride) for t in reversed(tconvs)]


def test_bergmann_layout_for_256_has_five_downsamplings_to_8x8():
    spec = encoder_spec("ae_bergmann", 256)
    assert sum(getattr(l, "stride", 1) == 2 for l in spec) == 5
    assert spec[-1].dim == 100 and spec[-1].k == 8
    with pytest.raises(ValueError):
        encoder_spec("ae_bergmann", 100)


@pytest.mark.parametrize("name,shape", [("unet28", (1, 28, 28)), ("unet32", (3, 32, 32)),
                                        ("unet_bergmann", (3, 64, 64))])
def test_unet_gives_one_logit_per_pixel(name, shape):
    net = build_net(name, shape)
    assert net(torch.rand(2, *shape)).shape == (2, *shape[1:])
    # skip connections: the last transposed convolution sees twice the first encoder width
    first = next(m for m in net.encoder.modules() if isinstance(m, nn.Conv2d))
    last = [m for m in net.decoder.modules() if isinstance(m, nn.ConvTranspose2d)][-1]
    assert last.in_channels == 2 * first.out_channels and last.out_channels == 1


def _brute_force_field(layers, in_size, out_index):
    """Support of d out[out_index] / d input for a chain of all-ones convolutions."""
    x = torch.zeros(1, 1, in_size, in_size, requires_grad=True)
    y = x
    for m in layers:
        y = m(y)
    y[0, 0, out_index, out_index].backward()
    nz = torch.nonzero(x.grad[0, 0].abs().sum(0)).flatten()
    return int(nz.max() - nz.min() + 1), float(nz.min() + nz.max()) / 2


def test_receptive_field_against_brute_force_gradients():
    layers = [nn.Conv2d(1, 1, 3, 1, 1), nn.Conv2d(1, 1, 2, 2, 0), nn.Conv2d(1, 1, 5, 1, 2), nn.Conv2d(1, 1, 3, 2, 1),
              nn.Conv2d(1, 1, 3, 1, 0)]
    for m in layers:
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    r, j, s = receptive_field(layers)
    for i in (3, 5):
        size, centre = _brute_force_field(layers, 64, i)
        assert size == r and centre == pytest.approx(s + i * j)


def test_fcdd_vgg11_receptive_field_is_the_published_one():
    net = FCDDNet((3, 224, 224), "fcdd_vgg11")
    assert (net.r, net.j, net.s) == (62, 8, 3.5)          # FCDD's hard-coded values for this network
    assert net.gauss_std == 14.0                          # the thesis' choice
    # torchvision's vgg11_bn `features[:21]` module layout (so its state dicts load)
    kinds = [type(m).__name__ for m in net.features]
    assert len(kinds) == 21 and kinds[:4] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64), (3, 60, 52)])
def test_fcdd_upsampled_map_has_the_input_size(shape):
    net = build_net("fcdd_small", shape)
    a = net(torch.rand(2, *shape))
    assert a.shape == (2, shape[1] // 4, shape[2] // 4)
    assert net.upsample(a).shape == (2, *shape[1:])


def test_fcdd_upsampling_puts_each_pixel_at_its_receptive_centre():
    net = FCDDNet((3, 224, 224), "fcdd_vgg11")
    for i in (0, 5, 27):
        a = torch.zeros(1, 28, 28)
        a[0, i, i] = 1.0
        up = net.upsample(a)[0]
        peak = torch.nonzero(up == up.max())
        centre = net.s + i * net.j
        assert peak[:, 0].float().mean() == pytest.approx(centre)
        assert peak[:, 1].float().mean() == pytest.approx(centre)
        assert up.max() == pytest.approx(float(gaussian_kernel(net.r, 14.0).max()), rel=1e-6)


def test_gaussian_kernel_peak_one_and_std():
    k = gaussian_kernel(31, 4.0).double()
    assert k.max() == pytest.approx(1.0)
    row = k[15]
    t = torch.arange(31, dtype=torch.float64) - 15
    assert torch.allclose(row, torch.exp(-t ** 2 / 32))


def test_fcdd_loads_local_weights_and_rejects_bad_files(tmp_path):
    src = FCDDNet((3, 224, 224), "fcdd_vgg11")
    path = tmp_path / "vgg11_bn.pth"
    torch.save({f"features.{k}": v for k, v in src.features.state_dict().items()}, path)
    net = FCDDNet((3, 224, 224), "fcdd_vgg11", weights=path)
    assert torch.equal(net.features[0].weight, src.features[0].weight)
    with pytest.raises(FileNotFoundError) as err:
        FCDDNet((3, 224, 224), "fcdd_vgg11", weights=tmp_path / "missing.pth")
    assert "\n" not in str(err.value)
    torch.save({"features.0.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError):
        FCDDNet((3, 224, 224), "fcdd_vgg11", weights=path)


def test_default_networks_follow_the_thesis_table():
    assert default_net("svdd", (1, 28, 28), "fashion_mnist") == "lenet28"
    assert default_net("hsc", (3, 32, 32), "cifar10") == "lenet32"
    assert default_net("logistic", (3, 224, 224), "mvtec:bottle") == "resnet18"
    assert default_net("ssim", (3, 256, 256), "mpdd") == "ae_bergmann"
    assert default_net("unet", (3, 256, 256), "mvtec") == "unet_bergmann"
    assert default_net("fcdd", (3, 224, 224), "mvtec") == "fcdd_vgg11"
    assert default_net("fcdd", (3, 64, 64), "textures:weave") == "fcdd_small"
    with pytest.raises(ValueError):
        build_net("vgg99", (3, 32, 32))


def test_resnet18_is_never_pretrained_and_adapts_channels():
    net = build_net("resnet18", (1, 64, 64), rep_dim=16)
    assert net(torch.rand(2, 1, 64, 64)).shape == (2, 16)
    assert math.isclose(float(net.net.bn1.weight.detach().mean()), 1.0)   # torchvision's fresh init, not ImageNet


def test_lenet_pools_before_its_leaky_relu_and_computes_the_same_function():
    """2×2 max-pooling commutes with the (increasing) leaky ReLU; pooling first is the thesis' block, cheaper."""
    import torch.nn.functional as F

    from calad_lib.nets.lenet import LeNet

    torch.manual_seed(0)
    net = LeNet((1, 28, 28))
    x = torch.randn(8, 1, 28, 28, requires_grad=True)

    def reference(inp):
        h = inp
        for conv, bn in ((net.conv[0], net.conv[1]), (net.conv[4], net.conv[5])):
            h = F.max_pool2d(F.leaky_relu(bn(conv(h))), 2, 2)            # the block as written: activation, then pool
        return net.fc2(F.leaky_relu(net.bn1(net.fc1(h.flatten(1)))))

    for mode in (True, False):
        net.train(mode)
        ours, ref = net(x), reference(x)
        assert torch.equal(ours, ref)
        g1, = torch.autograd.grad(ours.sum(), x)
        g2, = torch.autograd.grad(ref.sum(), x)
        assert torch.allclose(g1, g2, atol=1e-6)
