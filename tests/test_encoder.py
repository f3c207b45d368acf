import os

import matplotlib
import pytest
import torch
import torch.nn as nn
from PIL import Image

from captionlib.encoder import Encoder, classify, efficientnet_lite0, imagenet_classes, resnet

PHOTO = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")  # public domain (US Navy)


@pytest.fixture(scope="module")
def lite0():
    return efficientnet_lite0()


def test_pretrained_weights_really_load(lite0):
    """An ImageNet sanity check: the bundled photo of Grace Hopper in uniform is a 'military uniform'."""
    top5 = classify(lite0, Image.open(PHOTO))
    assert top5[0][0] == "military uniform" and top5[0][1] > 0.2, top5
    assert len(imagenet_classes()) == 1000


def test_random_weights_do_not_pass_the_sanity_check(lite0):
    # Guards the test above: it must depend on the weights, not on luck.
    from efficientnet_lite_pytorch import EfficientNet
    import copy

    b = copy.copy(lite0)
    torch.manual_seed(0)
    net = EfficientNet.from_name("efficientnet-lite0").eval()
    b.trunk, b.head = type(lite0.trunk)(net), type(lite0.head)(net._fc)
    assert classify(b, Image.open(PHOTO))[0][0] != "military uniform"


def test_encoder_output_shapes(lite0):
    enc = Encoder(lite0, grid=7)
    x = enc.preprocess([Image.open(PHOTO), Image.new("RGB", (100, 60))])
    assert x.shape == (2, 3, 224, 224)
    with torch.no_grad():
        feats, pooled = enc(x)
    assert feats.shape == (2, 49, 1280) and pooled.shape == (2, 1280)
    assert torch.allclose(pooled, feats.mean(1))
    with torch.no_grad():
        f4, _ = Encoder(lite0, grid=4)(x)
    assert f4.shape == (2, 16, 1280)


def test_stride16_features_are_the_networks_own_14x14_map(lite0):
    """efficientnet-lite0-s16 is the full network stopped after MBConv block 11: same weights, same map."""
    s16 = efficientnet_lite0(stride=16)
    assert (s16.name, s16.dim, s16.stride, s16.head) == ("efficientnet-lite0-s16", 112, 16, None)
    x = Encoder(lite0).preprocess(Image.open(PHOTO))
    seen = {}
    hook = lite0.trunk.net._blocks[10].register_forward_hook(lambda m, i, out: seen.update(map=out))
    try:
        with torch.no_grad():
            lite0.trunk(x)
            feats, _ = Encoder(s16)(x)            # grid None -> the map's own size, 14
    finally:
        hook.remove()
    assert seen["map"].shape == (1, 112, 14, 14) and feats.shape == (1, 196, 112)
    assert torch.allclose(feats, seen["map"].flatten(2).transpose(1, 2), atol=1e-6)
    assert Encoder(lite0).grid == 7 and Encoder(s16).grid == 14
    with pytest.raises(ValueError, match="stride 16 or 32"):
        efficientnet_lite0(stride=8)


def test_regions_are_row_major(lite0):
    """Region p = row * w + col of the feature map (what attention maps are reshaped back with)."""
    trunk = nn.Identity()
    enc = Encoder(trunk, dim=3, grid=None)
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    feats, _ = enc(x)
    assert feats.shape == (2, 20, 3)
    assert torch.equal(feats[1, 2 * 5 + 3], x[1, :, 2, 3])


def test_fine_tune_switch(lite0):
    enc = Encoder(lite0, fine_tune_last=0)
    assert not any(p.requires_grad for p in enc.parameters())
    enc.fine_tune(2)
    trainable = {n for n, p in enc.trunk.named_parameters() if p.requires_grad}
    assert trainable and all(("_conv_head" in n) or ("_blocks.15" in n) for n in trainable)
    enc.fine_tune(0)
    enc.train()
    assert not enc.trunk.training  # batch-norm statistics stay frozen


def test_custom_module_needs_its_dim():
    with pytest.raises(ValueError, match="dim="):
        Encoder(nn.Conv2d(3, 8, 3))


def test_resnet_without_cached_weights_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="never downloads"):
        resnet(50)


def test_unknown_backbone_name():
    with pytest.raises(ValueError, match="efficientnet-lite0"):
        Encoder("vgg16")


def test_folded_batch_norms_give_the_same_features_with_no_batch_norm_left():
    """Folding each eval-mode batch norm into its conv changes no feature beyond float rounding."""
    from captionlib.encoder import folded

    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 224)
    for name in ("efficientnet-lite0", "efficientnet-lite0-s16"):
        enc = Encoder(name).eval()
        fast = folded(enc)
        assert fast is not enc and not any(isinstance(m, nn.BatchNorm2d) for m in fast.trunk.modules())
        with torch.no_grad():
            assert torch.allclose(fast(x)[0], enc(x)[0], atol=1e-4, rtol=1e-4)
        assert any(isinstance(m, nn.BatchNorm2d) for m in enc.trunk.modules())   # the original is untouched


def test_folding_a_batch_norm_that_is_not_applied_after_its_conv_is_refused():
    """A module that registers conv then BN but applies them in another order keeps its own forward."""
    from captionlib.encoder import folded

    class Swapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
            self.bn.running_mean.fill_(0.5)
            self.bn.running_var.fill_(4.0)

        def forward(self, x):
            return self.conv(self.bn(x))                                 # batch norm first

    enc = Encoder(Swapped(), dim=3, image_size=16).eval()
    assert folded(enc) is enc
