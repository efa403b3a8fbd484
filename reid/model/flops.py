"""FLOP counts with fvcore, broken down by stage (stem, layer1…layer4, pooling, head).

fvcore counts one fused multiply-add as ONE flop (so its numbers are about half of
"2 × MACs" counts). fvcore has no formula for fixed-window pooling; it is counted
here as fvcore counts adaptive average pooling: one flop per input element. Operators
still without a formula (element-wise adds, GeM's powers …) are skipped and listed in
:attr:`FlopReport.skipped`.

Example:
    >>> from reid.model import build_model
    >>> from reid.spec import HeadSpec, ModelSpec
    >>> r = count_flops(build_model(ModelSpec(), HeadSpec(type="none"), None))
    >>> list(r.by_stage), r.total == sum(r.by_stage.values())
    (['stem', 'layer1', 'layer2', 'layer3', 'layer4', 'pooling', 'head'], True)
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from reid.model.network import ReidModel

FMA_NOTE = "fvcore counts one fused multiply-add as one flop; pooling counts one flop per input element"


@dataclass(frozen=True)
class FlopReport:
    """FLOPs for one image (batch size 1, eval mode).

    Attributes:
        input_size: (C, H, W) counted for.
        total: all counted flops.
        by_stage: stage name → flops, in network order; sums to ``total``.
        skipped: operator → times seen, for operators fvcore does not count.
        note: how flops are counted.
    """

    input_size: tuple[int, int, int]
    total: int
    by_stage: dict[str, int]
    skipped: dict[str, int]
    note: str = FMA_NOTE


class _Traceable(nn.Module):
    # jit tracing (used by fvcore) needs tensor outputs; ReidModel returns a dict that may hold None.
    def __init__(self, net: ReidModel):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(x)
        return tuple(v for v in (out["features"], out["logits"]) if v is not None)


def count_flops(model: ReidModel) -> FlopReport:
    """Count flops of ``model`` for one image of the size its backbone was built for."""
    with warnings.catch_warnings():  # fvcore's import calls the deprecated torch.jit.script
        warnings.simplefilter("ignore", FutureWarning)
        from fvcore.nn import FlopCountAnalysis
        from fvcore.nn.jit_handles import elementwise_flop_counter

    input_size = model.backbone.input_size
    was_training = model.training
    model.eval()
    logging.getLogger("fvcore").setLevel(logging.ERROR)  # skipped ops are reported, not logged
    try:
        analysis = FlopCountAnalysis(_Traceable(model), torch.zeros(1, *input_size))
        pooling = elementwise_flop_counter(1, 0)
        analysis.set_op_handle("aten::avg_pool2d", pooling, "aten::max_pool2d", pooling)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        by_module = analysis.by_module()
        total = analysis.total()
        skipped = dict(analysis.unsupported_ops())
    finally:
        model.train(was_training)
    by_stage = {
        stage: sum(by_module.get(f"net.backbone.{name}", 0) for name in names)
        for stage, names in model.backbone.groups.items()
    }
    by_stage["head"] = by_module.get("net.head", 0)
    return FlopReport(input_size=tuple(input_size), total=int(total), by_stage=by_stage, skipped=skipped)
