"""Spec fragments shared by the end-to-end tests: a synthetic set small enough to train in seconds."""

TINY_DATA = """
[data]
identities = 16
images_per_identity = 6
cameras = 2
height = 64
width = 64
train_ids = 10
query_rule = "leave_one_out"
"""

FP32_DETERMINISTIC = """
[runtime]
precision = "fp32"
deterministic = true
log_every = 1
"""


def small_run(name: str, seed: int, epochs: int, threads: int = 1) -> str:
    """A whole spec that trains a one-block-per-stage ResNet with the ID loss on :data:`TINY_DATA` in seconds,
    deterministically in fp32 (the fault tests compare interrupted runs with uninterrupted ones), without
    TensorBoard (its end-of-run drawing costs seconds per run; tests/test_tensorboard.py covers it)."""
    return f'name = "{name}"\nseed = {seed}\n' + TINY_DATA + FP32_DETERMINISTIC + f"""threads = {threads}
tensorboard = false
[augment]
erase = 0.0
[sampler]
type = "random"
batch_size = 16
[schedule]
epochs = {epochs}
warmup_epochs = 0
max_iters_per_epoch = 4
[model]
layers = [1, 1, 1, 1]
[eval]
batch_size = 64
"""
