"""Optional training behaviours as registered hooks: each factory in :data:`reid.registry.TRAINING_HOOKS` sees the
:class:`~reid.engine.build.RunBuilder` and returns a hook when the spec asks for it (``None`` otherwise).

Registered here, in the order they run: ``freeze_backbone`` (``optim.freeze_backbone_epochs``), ``clip_grad_norm``
(``optim.clip_grad_norm``) and ``ema`` (``optim.ema_decay``). A user adds another the same way, from outside the
package::

    from reid.registry import TRAINING_HOOKS

    @TRAINING_HOOKS.register("print_lr")
    def print_lr(builder):
        return PrintLr() if builder.spec.name.startswith("debug") else None
"""

from __future__ import annotations

import torch
from timm.utils import ModelEmaV3

from reid.engine.checkpoint import unwrap
from reid.engine.trainer import Hook, Trainer
from reid.registry import TRAINING_HOOKS


class BackboneFreeze(Hook):
    """Trains only the head for the first ``epochs`` epochs (``optim.freeze_backbone_epochs``), as fast-reid's
    layer freeze does: the backbone's BatchNorm layers stay in eval mode (their statistics are kept) and its
    parameters are not stepped (their gradients are dropped before the optimiser's step, so neither the
    weights nor the optimiser's moments change). Gradients are still computed, so DDP's reduction is unchanged.
    """

    def __init__(self, backbone: torch.nn.Module, optimizer: torch.optim.Optimizer, epochs: int):
        self.backbone, self.epochs = backbone, epochs
        self.params = [p for g in optimizer.param_groups if g.get("name", "").startswith("backbone.") for p in g["params"]]

    def before_step(self, trainer: Trainer) -> None:
        """Keep the backbone in eval mode while it is frozen."""
        if trainer.state.epoch < self.epochs:
            self.backbone.eval()

    def after_backward(self, trainer: Trainer) -> None:
        """Drop the backbone's gradients while it is frozen (an optimiser skips parameters without one)."""
        if trainer.state.epoch < self.epochs:
            for p in self.params:
                p.grad = None


@TRAINING_HOOKS.register("freeze_backbone")
def freeze_backbone(builder) -> Hook | None:
    """:class:`BackboneFreeze` for ``optim.freeze_backbone_epochs`` epochs (when not 0)."""
    epochs = builder.spec.optim.freeze_backbone_epochs
    return BackboneFreeze(unwrap(builder.model).backbone, builder.optimizer, epochs) if epochs else None


class GradientClipping(Hook):
    """Clips the global L2 norm of the optimiser's gradients to ``max_norm`` before each optimiser step
    (``torch.nn.utils.clip_grad_norm_``); with fp16's loss scaler the gradients are unscaled first.

    Attributes:
        last_norm: the norm before clipping at the latest step (a device tensor: reading it waits for the device).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, max_norm: float):
        self.optimizer, self.max_norm = optimizer, max_norm
        self.last_norm: torch.Tensor | None = None

    def after_backward(self, trainer: Trainer) -> None:
        """Unscale (fp16) and clip the gradients the optimiser is about to use."""
        trainer.runtime.unscale_gradients(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        self.last_norm = torch.nn.utils.clip_grad_norm_(params, self.max_norm)


@TRAINING_HOOKS.register("clip_grad_norm")
def clip_grad_norm(builder) -> Hook | None:
    """:class:`GradientClipping` at ``optim.clip_grad_norm`` (when not 0)."""
    max_norm = builder.spec.optim.clip_grad_norm
    return GradientClipping(builder.optimizer, max_norm) if max_norm else None


class WeightAverage(Hook):
    """An exponential moving average of the model's weights and buffers (timm's ``ModelEmaV3``), updated after
    every optimiser step: ``ema ← decay · ema + (1 − decay) · weights``, starting from the initial weights.

    Its :attr:`evaluated_model` is what the run evaluates and saves as the model (``best.pt``, ``last.pt``'s
    ``model``); ``last.pt`` keeps the trained weights beside it to resume (:func:`reid.engine.checkpoint.training_checkpoint`).
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.model = model
        self.average = ModelEmaV3(model, decay=decay)

    @property
    def evaluated_model(self) -> torch.nn.Module:
        """The averaged weights (a copy of the model)."""
        return self.average.module

    def after_step(self, trainer: Trainer) -> None:
        """Fold the new weights in (only after an optimiser step: not between accumulated batches)."""
        if trainer.stepped:
            self.average.update(self.model)


@TRAINING_HOOKS.register("ema")
def ema(builder) -> Hook | None:
    """:class:`WeightAverage` with ``optim.ema_decay`` (when not 0)."""
    decay = builder.spec.optim.ema_decay
    return WeightAverage(unwrap(builder.model), decay) if decay else None
