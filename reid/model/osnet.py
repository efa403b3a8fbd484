"""OSNet (Zhou et al., ICCV 2019, "Omni-Scale Feature Learning for Person Re-Identification") as a reid backbone.

The layout (:class:`~reid.model.blocks.OSNetLayout`, registered as ``osnet_x1_0``) gives
the stem width and three stage widths, (64, 256, 384, 512) for x1.0, and two OSBlocks
per stage. The network, with torchreid's module names so its state dicts load one to one:

- ``conv1``: 7×7/s2 conv + BN + ReLU; ``maxpool``: 3×3/s2;
- ``conv2``, ``conv3``: OSBlocks, then a transition (1×1 conv + BN + ReLU, 2×2 average
  pooling with stride 2); ``conv4``: OSBlocks without a transition; ``conv5``: 1×1 conv + BN + ReLU;
- ``pool``: reid's global pooling (``avg`` / ``max`` / ``gem``), as for every backbone.

An OSBlock squeezes to a quarter of its output width (``conv1``), runs four streams of
1, 2, 3 and 4 Lite 3×3 convolutions (1×1 conv, then a depthwise 3×3 + BN + ReLU:
receptive fields 3, 5, 7, 9), weighs each stream's channels with one shared
aggregation gate (``gate``: global average → 1×1 conv to width/16 → ReLU → 1×1 conv →
sigmoid) and sums them, expands back (``conv3``, 1×1 conv + BN) and adds the shortcut
(``downsample``, a 1×1 conv + BN where the width changes), then ReLU.

torchreid's ``fc`` (512→512 linear + BN + ReLU) and ``classifier`` are not part of the
backbone: reid's pooling feeds reid's heads, as with the ResNets (fast-reid does the
same), so the embedding is the 512-channel ``conv5`` map, pooled.

The final map is 1/16 of the input (16×8 at 256×128), the size a ResNet gets with last
stride 1; OSNet has no last strided stage to switch, so ``last_stride = 2`` is refused.

Example:
    >>> from reid.registry import ARCHS
    >>> net = build_osnet(ARCHS.get("osnet_x1_0")(), "osnet_x1_0", input_size=(3, 64, 32))
    >>> net(torch.zeros(2, 3, 64, 32)).shape, net.feature_size, net.embedding_dim
    (torch.Size([2, 512]), (4, 2), 512)
    >>> sum(p.numel() for p in net.parameters())
    1905828
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from reid.errors import ReidError
from reid.model.blocks import OSNetLayout, conv_output_size
from reid.model.builder import Backbone, init_weights
from reid.model.pooling import POOLINGS

#: An OSBlock's streams: how many Lite 3×3 convs each one stacks (receptive fields 3, 5, 7, 9).
STREAM_DEPTHS = {"conv2a": 1, "conv2b": 2, "conv2c": 3, "conv2d": 4}
#: An OSBlock's inner width is its output width divided by this.
BOTTLENECK_REDUCTION = 4
#: The aggregation gate's hidden width is its input width divided by this.
GATE_REDUCTION = 16
#: How many times smaller than the input the final map is: stem conv and max pooling (4), two transitions (4).
OUTPUT_STRIDE = 16


class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm, without an activation: torchreid's ``Conv1x1Linear``.

    Example:
        >>> ConvBN(8, 16)(torch.zeros(1, 8, 4, 4)).shape
        torch.Size([1, 16, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) → (B, C_out, H/stride, W/stride)."""
        return self.bn(self.conv(x))


class ConvBNReLU(ConvBN):
    """Conv (no bias) + BatchNorm + ReLU: torchreid's ``ConvLayer`` (the stem) and ``Conv1x1``.

    Example:
        >>> ConvBNReLU(3, 8, kernel=7, stride=2)(torch.zeros(1, 3, 64, 32)).shape
        torch.Size([1, 8, 32, 16])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1):
        super().__init__(in_channels, out_channels, kernel, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) → (B, C_out, H/stride, W/stride), non-negative."""
        return self.relu(super().forward(x))


class LightConv3x3(nn.Module):
    """Lite 3×3 convolution: 1×1 conv (linear), depthwise 3×3 conv, BN, ReLU; width unchanged.

    Example:
        >>> LightConv3x3(16)(torch.zeros(1, 16, 4, 4)).shape
        torch.Size([1, 16, 4, 4])
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, C, H, W)."""
        return self.relu(self.bn(self.conv2(self.conv1(x))))


class ChannelGate(nn.Module):
    """The unified aggregation gate: per-channel weights in (0, 1) computed from the input itself, applied to it.

    Global average pooling → 1×1 conv to ``channels // 16`` → ReLU → 1×1 conv back → sigmoid.

    Example:
        >>> gate = ChannelGate(32)
        >>> x = torch.rand(2, 32, 4, 4)
        >>> bool(((gate(x) >= 0) & (gate(x) <= x)).all())
        True
    """

    def __init__(self, channels: int, reduction: int = GATE_REDUCTION):
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)
        self.gate_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → x scaled channel by channel by its gate."""
        weights = self.gate_activation(self.fc2(self.relu(self.fc1(self.global_avgpool(x)))))
        return x * weights


def lite_stream(channels: int, depth: int) -> nn.Module:
    """``depth`` Lite 3×3 convs in a row: the module itself for one (torchreid's ``conv2a``), a Sequential for more."""
    convs = [LightConv3x3(channels) for _ in range(depth)]
    return convs[0] if depth == 1 else nn.Sequential(*convs)


class OSBlock(nn.Module):
    """The omni-scale residual block: 1×1 squeeze, four Lite-3×3 streams joined by one shared gate, 1×1 expand, shortcut.

    Calling order (what the layer table lists): conv1, the streams conv2a … conv2d, the
    gate four times, conv3, downsample, relu.

    Example:
        >>> block = OSBlock(64, 256)
        >>> block(torch.zeros(1, 64, 8, 4)).shape, type(block.downsample).__name__
        (torch.Size([1, 256, 8, 4]), 'ConvBN')
    """

    def __init__(self, in_channels: int, out_channels: int, reduction: int = BOTTLENECK_REDUCTION):
        super().__init__()
        mid = out_channels // reduction
        self.conv1 = ConvBNReLU(in_channels, mid)
        for name, depth in STREAM_DEPTHS.items():
            self.add_module(name, lite_stream(mid, depth))
        self.gate = ChannelGate(mid)
        self.conv3 = ConvBN(mid, out_channels)
        self.downsample = ConvBN(in_channels, out_channels) if in_channels != out_channels else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) → (B, C_out, H, W)."""
        squeezed = self.conv1(x)
        joined = sum(self.gate(getattr(self, name)(squeezed)) for name in STREAM_DEPTHS)
        return self.relu(self.conv3(joined) + self.downsample(x))


def osnet_stage(in_channels: int, out_channels: int, blocks: int, transition: bool) -> nn.Sequential:
    """``blocks`` OSBlocks (the first changes the width), then, if ``transition``, 1×1 conv + BN + ReLU and 2×2/s2 average pooling."""
    layers: list[nn.Module] = [OSBlock(in_channels if i == 0 else out_channels, out_channels) for i in range(blocks)]
    if transition:
        layers.append(nn.Sequential(ConvBNReLU(out_channels, out_channels), nn.AvgPool2d(2, stride=2)))
    return nn.Sequential(*layers)


def osnet_feature_size(hw: tuple[int, int]) -> tuple[int, int]:
    """Spatial size of OSNet's last map for input ``hw``: stem conv, max pooling, two 2×2 average poolings (floor).

    Example:
        >>> osnet_feature_size((256, 128)), osnet_feature_size((64, 32))
        ((16, 8), (4, 2))
    """
    out = []
    for n in hw:
        n = conv_output_size(n, 7, 2, 3)
        n = conv_output_size(n, 3, 2, 1)
        for _ in range(2):
            n = conv_output_size(n, 2, 2, 0)
        out.append(n)
    return out[0], out[1]


def check_osnet_options(arch: str, layers: tuple[int, ...] | None, last_stride: int) -> None:
    """Refuse spec options that do not apply to an OSNet.

    Raises:
        ReidError: ``layers`` given (OSNet's blocks per stage are fixed by the arch), or ``last_stride`` 2.
    """
    if layers is not None:
        raise ReidError(f"layers applies to the block-spec ResNets, not to {arch}", where="model.layers",
                        fix="remove model.layers (an OSNet's blocks per stage come with its arch)")
    if last_stride != 1:
        raise ReidError(f"{arch} has no last strided stage to set: its final map is already 1/{OUTPUT_STRIDE} of the "
                        "input (16x8 at 256x128), what last stride 1 gives a ResNet", where="model.last_stride",
                        fix="set model.last_stride = 1")


def build_osnet(layout: OSNetLayout, arch: str = "osnet", layers: tuple[int, ...] | None = None, last_stride: int = 1,
                pooling: str = "avg", input_size: tuple[int, int, int] = (3, 256, 128)) -> Backbone:
    """Build an OSNet backbone (``conv1`` … ``conv5`` + reid pooling) for images of ``input_size`` (C, H, W).

    Args:
        layout: stem + stage widths and OSBlocks per stage.
        arch: the registered name, for messages.
        layers: must be None (see :func:`check_osnet_options`).
        last_stride: must be 1 (see :func:`check_osnet_options`).
        pooling: reid global pooling (``avg``, ``max``, ``gem``).
        input_size: (C, H, W); H and W of at least 16 (the final map is 1/16 of them).

    Raises:
        ReidError: options that do not apply, or an input too small for a 1×1 final map.
    """
    check_osnet_options(arch, layers, last_stride)
    hw = osnet_feature_size((input_size[1], input_size[2]))
    if min(hw) < 1:
        raise ReidError(f"input {'x'.join(map(str, input_size))} is too small for {arch}: its final map is 1/{OUTPUT_STRIDE} "
                        "of the input", where="input size", fix=f"use height and width of at least {OUTPUT_STRIDE}")
    stem, *widths = layout.channels
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    modules["conv1"] = ConvBNReLU(input_size[0], stem, kernel=7, stride=2)
    modules["maxpool"] = nn.MaxPool2d(3, stride=2, padding=1)
    last = len(widths) - 1
    for i, (c_in, c_out, n) in enumerate(zip([stem, *widths[:-1]], widths, layout.blocks)):
        modules[f"conv{i + 2}"] = osnet_stage(c_in, c_out, n, transition=i < last)
    modules["conv5"] = ConvBNReLU(widths[-1], widths[-1])
    modules["pool"] = POOLINGS.get(pooling)()
    groups = {"stem": ["conv1", "maxpool"], **{name: [name] for name in modules if name.startswith("conv") and name != "conv1"},
              "pooling": ["pool"]}
    net = Backbone(modules, groups, (), tuple(input_size), hw, widths[-1])
    init_weights(net)
    return net
