"""The one builder: turns a tuple of layer specs (:mod:`reid.model.blocks`) into a backbone.

Module names follow torchvision's ResNet (``conv1``, ``bn1``, ``relu``, ``maxpool``,
``layer1.0.conv1``, ``layer1.0.downsample.0`` …, plus ``pool``) for BasicBlock and
Bottleneck stages alike, so torchvision state dicts (ResNet-18 … 152) load without a
key mapping. An IBN-a stage's ``bn1`` is an :class:`IBN` with children ``IN`` and ``BN``
(``layer1.0.bn1.IN.weight``, ``layer1.0.bn1.BN.running_mean`` …), the IBN-Net authors'
names, so their ResNet-IBN-a state dicts load one to one too.

Example:
    >>> from reid.model.blocks import backbone_specs
    >>> net = build_backbone(backbone_specs("resnet18"), input_size=(3, 128, 128))
    >>> net(torch.zeros(2, 3, 128, 128)).shape, net.feature_size
    (torch.Size([2, 512]), (8, 8))
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from reid.model.blocks import EXPANSION, GlobalPoolSpec, LayerSpec, MaxPoolSpec, StageSpec, StemSpec, spec_output_size
from reid.model.pooling import POOLINGS


class IBN(nn.Module):
    """IBN-a normalisation (Pan et al. 2018): InstanceNorm (affine) on the first ``half`` channels, BatchNorm on the rest.

    ``half = channels // 2``; the two results are concatenated back in channel order.

    Example:
        >>> ibn = IBN(64)
        >>> ibn.half, ibn.IN.num_features, ibn.BN.num_features, ibn(torch.randn(2, 64, 4, 4)).shape
        (32, 32, 32, torch.Size([2, 64, 4, 4]))
    """

    def __init__(self, channels: int):
        super().__init__()
        self.half = channels // 2
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(channels - self.half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, C, H, W): IN(x[:, :half]) next to BN(x[:, half:])."""
        first, rest = torch.split(x, [self.half, x.shape[1] - self.half], dim=1)
        return torch.cat((self.IN(first), self.BN(rest)), dim=1)


def first_norm(channels: int, ibn: bool) -> nn.Module:
    """The norm after a block's first conv: :class:`IBN` for an IBN-a stage, else BatchNorm."""
    return IBN(channels) if ibn else nn.BatchNorm2d(channels)


class ResBlock(nn.Module):
    """A BasicBlock: conv3×3 → BN → ReLU → conv3×3 → BN, plus the shortcut, → ReLU.

    The shortcut (``downsample``) is ``nn.Identity`` when input and output shapes match
    and a 1×1 conv + BN projection when they don't. Calling order (what a
    torchsummary-style table lists): conv1, bn1, relu, conv2, bn2, downsample, relu.
    ``ibn=True`` makes ``bn1`` an :class:`IBN` layer.
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1, ibn: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = first_norm(channels, ibn)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = shortcut(in_channels, channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) → (B, C, H/stride, W/stride)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


def shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """``nn.Identity`` when shapes match, else torchvision's projection (1×1 conv with ``stride`` + BN)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels))


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (ResNet v1.5): 1×1 → 3×3 (strided) → 1×1 to ``4 × width``, plus the shortcut.

    Calling order (what a torchsummary-style table lists): conv1, bn1, relu, conv2, bn2,
    relu, conv3, bn3, downsample, relu. ``ibn=True`` makes ``bn1`` an :class:`IBN` layer
    (IBN-Net's ``Bottleneck_IBN`` with ``ibn="a"``).
    """

    expansion = EXPANSION["bottleneck"]

    def __init__(self, in_channels: int, width: int, stride: int = 1, ibn: bool = False):
        super().__init__()
        out = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = first_norm(width, ibn)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = shortcut(in_channels, out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) → (B, 4·width, H/stride, W/stride)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


#: Block kind (``StageSpec.block``) → module class; what the layer table lists as one row per block.
RESIDUAL_BLOCKS: dict[str, type[nn.Module]] = {"basic": ResBlock, "bottleneck": Bottleneck}


class Backbone(nn.Module):
    """Runs its children in order and flattens the pooled map to a (B, D) embedding.

    Attributes:
        specs: the layer specs it was built from.
        input_size: (C, H, W) it was built for (its preferred size; the pooling takes any).
        feature_size: (H, W) of the last feature map (before pooling).
        embedding_dim: D.
        groups: stage name (``stem``, ``layer1`` … ``layer4``, ``pooling``) → child module names.
    """

    def __init__(
        self,
        modules: OrderedDict[str, nn.Module],
        groups: dict[str, list[str]],
        specs: tuple[LayerSpec, ...],
        input_size: tuple[int, int, int],
        feature_size: tuple[int, int],
        embedding_dim: int,
    ):
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)
        self.groups = groups
        self.specs = specs
        self.input_size = input_size
        self.feature_size = feature_size
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images → (B, D) pooled embedding."""
        return self.pool_map(self.feature_map(x))

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images → the last feature map, before pooling."""
        for name, module in self.named_children():
            if name != "pool":
                x = module(x)
        return x

    def pool_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map → (B, D) pooled embedding."""
        pool = getattr(self, "pool", None)
        return torch.flatten(x if pool is None else pool(x), 1)

    def adopt_keys(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weight-file keys in this backbone's naming: torchvision's already are, so ``state`` as is."""
        return state


def build_backbone(specs: tuple[LayerSpec, ...], input_size: tuple[int, int, int] = (3, 128, 128)) -> Backbone:
    """Build a :class:`Backbone` from layer specs for images of ``input_size`` (C, H, W).

    Every conv/pool pads by ``kernel // 2``, so any positive H, W gives maps of at least 1×1.
    """
    channels, hw = input_size[0], (input_size[1], input_size[2])
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    groups: dict[str, list[str]] = {}
    stage = 0
    for spec in specs:
        match spec:
            case StemSpec(out, k, s):
                modules["conv1"] = nn.Conv2d(channels, out, k, stride=s, padding=k // 2, bias=False)
                modules["bn1"] = nn.BatchNorm2d(out)
                modules["relu"] = nn.ReLU(inplace=True)
                groups["stem"] = ["conv1", "bn1", "relu"]
                channels = out
            case MaxPoolSpec(k, s):
                modules["maxpool"] = nn.MaxPool2d(k, stride=s, padding=k // 2)
                groups.setdefault("stem", []).append("maxpool")
            case StageSpec(width, n, s, kind, ibn):
                stage += 1
                name = f"layer{stage}"
                block = RESIDUAL_BLOCKS[kind]
                blocks = [block(channels if i == 0 else spec.out_channels, width, s if i == 0 else 1, ibn=ibn) for i in range(n)]
                modules[name] = nn.Sequential(*blocks)
                groups[name] = [name]
                channels = spec.out_channels
            case GlobalPoolSpec(kind):
                modules["pool"] = POOLINGS.get(kind)()
                groups["pooling"] = ["pool"]
                continue
        hw = spec_output_size(spec, hw)
    net = Backbone(modules, groups, tuple(specs), tuple(input_size), hw, channels)
    init_weights(net)
    return net


def init_weights(net: nn.Module) -> None:
    """torchvision's ResNet initialisation (torchreid's OSNet uses the same): Kaiming (fan_out) convs with
    zero biases, BatchNorm and affine InstanceNorm weight 1 / bias 0."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.InstanceNorm2d) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
