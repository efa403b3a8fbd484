"""Device, precision, threads and seeding — resolved once from the spec's ``[runtime]`` table."""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from reid.data.transforms import to_device
from reid.errors import ReidError
from reid.spec import RuntimeSpec


@dataclass(frozen=True)
class Runtime:
    """Where and how tensors are computed.

    Attributes:
        device: ``cpu`` or ``cuda[:i]``.
        dtype: autocast dtype (``torch.bfloat16`` / ``torch.float16``) or ``None`` for fp32.
        channels_last: whether images and the model use the NHWC memory format.
        scaler: the loss scaler of fp16 training (``None`` for bf16 and fp32, which need none).
        tf32: on CUDA, TF32 on or off inside :meth:`autocast` only, the process's setting restored after it
            (:func:`tf32_scope`); ``None``: leave the process's setting (training sets it process-wide).
    """

    device: torch.device
    dtype: torch.dtype | None
    channels_last: bool
    scaler: torch.amp.GradScaler | None = field(default=None, compare=False, repr=False)
    tf32: bool | None = None

    @property
    def precision(self) -> str:
        """``bf16``, ``fp16`` or ``fp32``."""
        return {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}[self.dtype]

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast context for forward passes (a no-op in fp32), with :attr:`tf32` applied inside it on CUDA."""
        scoped = self.tf32 is not None and self.device.type == "cuda"
        if self.dtype is None:
            return tf32_scope(self.tf32) if scoped else contextlib.nullcontext()
        cast = torch.autocast(device_type=self.device.type, dtype=self.dtype)
        return _both(tf32_scope(self.tf32), cast) if scoped else cast

    def backward(self, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` (with fp16, the loss scaled by :attr:`scaler`). Call ``optimizer.zero_grad`` before."""
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Step ``optimizer`` after :meth:`backward`.

        With fp16 the gradients are unscaled before the step, a step whose gradients overflowed
        is skipped and the scale then shrinks.
        """
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def unscale_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        """With fp16's loss scaler, divide ``optimizer``'s gradients by the scale now (before clipping them; the
        step then does not unscale again); a no-op otherwise."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def gradient_unscale(self) -> float:
        """What gradients from :meth:`backward` must be multiplied by to be the loss's own: ``1 / scale`` with
        fp16's loss scaler (one read-back from the device), else 1."""
        return 1.0 if self.scaler is None else 1.0 / float(self.scaler.get_scale())

    def synchronize(self) -> None:
        """Wait until the device has run everything queued (CUDA); a no-op on the CPU. For timers only."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def to_device(self, images: torch.Tensor) -> torch.Tensor:
        """Move a batch to the device (non-blocking from pinned memory on CUDA) in the model's layout.

        A batch already on a GPU (device-side augmentation) is not pinned, only moved if needed.
        """
        images = to_device(images, self.device)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def describe(self) -> dict:
        """JSON-friendly summary for run directories."""
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else cpu_name()
        return {"device": str(self.device), "device_name": name, "precision": self.precision,
                "channels_last": self.channels_last, "threads": torch.get_num_threads()}


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (``"cpu"`` where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu"


def bf16_supported(device: torch.device) -> bool:
    """True where bf16 matrix maths runs natively (AMX / AVX-512-bf16 CPUs, Ampere+ GPUs)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)  # emulated bf16 is slower than fp16
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_runtime(spec: RuntimeSpec, local_rank: int = 0, scope_tf32: bool = False) -> Runtime:
    """Pick device, autocast dtype and memory format from the spec and the hardware.

    ``auto`` means: CUDA when present; bf16 where supported natively (else fp16 on CUDA, fp32 on
    CPU); channels_last whenever reduced precision is on (it pays off with bf16/fp16 kernels).
    On CUDA, TF32 follows the precision (see :func:`set_tf32`): process-wide for a training run, or
    with ``scope_tf32`` (a library call such as ``reid.load``, inside someone else's process) only
    inside :meth:`Runtime.autocast`, the caller's settings untouched.
    fp16 comes with a :class:`torch.amp.GradScaler` (its narrow range underflows small
    gradients without loss scaling).

    Example:
        >>> resolve_runtime(RuntimeSpec(device="cpu", precision="fp32")).precision
        'fp32'
    """
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise ReidError("runtime.device = \"cuda\" but no CUDA GPU is visible", where="runtime.device",
                        fix='use device = "auto" or "cpu", or check CUDA_VISIBLE_DEVICES and the driver')
    use_cuda = spec.device == "cuda" or (spec.device == "auto" and torch.cuda.is_available())
    device = torch.device(f"cuda:{local_rank}") if use_cuda else torch.device("cpu")
    dtype = autocast_dtype(spec.precision, device)
    channels_last = spec.channels_last == "on" or (spec.channels_last == "auto" and dtype is not None)
    scaler = torch.amp.GradScaler(device.type) if dtype is torch.float16 else None
    tf32 = None
    if use_cuda and scope_tf32:
        tf32 = dtype is not None
    elif use_cuda:
        set_tf32(dtype is not None)
    return Runtime(device=device, dtype=dtype, channels_last=channels_last, scaler=scaler, tf32=tf32)


def autocast_dtype(precision: str, device: torch.device, key: str = "runtime.precision") -> torch.dtype | None:
    """The autocast dtype ``precision`` (``auto``, ``bf16``, ``fp16``, ``fp32``) means on ``device``.

    ``auto``: bf16 where supported natively, else fp16 on CUDA, fp32 (``None``) on the CPU.

    Example:
        >>> autocast_dtype("fp32", torch.device("cpu")) is None
        True

    Raises:
        ReidError: bf16 where it is not supported, fp16 off CUDA (``key`` names the spec key).
    """
    use_cuda = device.type == "cuda"
    if precision == "auto":
        return torch.bfloat16 if bf16_supported(device) else (torch.float16 if use_cuda else None)
    if precision == "bf16":
        if not bf16_supported(device):
            raise ReidError(f"bf16 is not supported on {device}", where=key, fix='use precision = "auto" or "fp32"')
        return torch.bfloat16
    if precision == "fp16":
        if not use_cuda:
            raise ReidError("fp16 autocast is only offered on CUDA", where=key, fix='use "bf16" or "fp32" on the CPU')
        return torch.float16
    return None


def evaluation_runtime(runtime: Runtime, precision: str) -> Runtime:
    """``runtime`` for embedding at ``eval.precision``: ``auto`` keeps its precision; ``fp32``, ``bf16`` and
    ``fp16`` replace its autocast dtype, with TF32 on CUDA on only for bf16 / fp16 (scoped to its forwards).

    Evaluation embeds in fp32 by default: bf16 features agree with fp32 ones on only about 97.6 % of
    nearest neighbours (BENCHMARKS.md), so numbers would depend on the hardware a run happened to use.

    Example:
        >>> bf16 = Runtime(torch.device("cpu"), torch.bfloat16, channels_last=True)
        >>> evaluation_runtime(bf16, "fp32").precision, evaluation_runtime(bf16, "auto").precision
        ('fp32', 'bf16')
    """
    if precision == "auto":
        return runtime
    dtype = autocast_dtype(precision, runtime.device, key="eval.precision")
    return replace(runtime, dtype=dtype, scaler=None, tf32=dtype is not None)


def set_tf32(enabled: bool) -> None:
    """Let float32 matmuls and convolutions on CUDA run as TF32 (10-bit mantissa) or keep them IEEE fp32.

    :func:`resolve_runtime` switches TF32 off for ``precision = "fp32"`` (the user asked for fp32
    numbers) and on with bf16 / fp16 autocast, where the float32 work left outside autocast (the
    loss's distance matrix, optimiser-side maths) already sits next to 8- or 11-bit mantissas.
    """
    mode = "tf32" if enabled else "ieee"
    torch.backends.cuda.matmul.fp32_precision = mode
    torch.backends.cudnn.conv.fp32_precision = mode


@contextlib.contextmanager
def tf32_scope(enabled: bool):
    """:func:`set_tf32` for the duration of a ``with`` block; the previous settings come back after it.

    Example:
        >>> before = torch.backends.cuda.matmul.fp32_precision
        >>> with tf32_scope(True):
        ...     torch.backends.cuda.matmul.fp32_precision
        'tf32'
        >>> torch.backends.cuda.matmul.fp32_precision == before
        True
    """
    saved = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    set_tf32(enabled)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = saved


@contextlib.contextmanager
def _both(first: contextlib.AbstractContextManager, second: contextlib.AbstractContextManager):
    with first, second:
        yield


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; in deterministic mode also force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True


def set_threads(threads: int | None) -> None:
    """Use ``threads`` intra-op threads (default: every core torch sees)."""
    if threads:
        torch.set_num_threads(threads)
