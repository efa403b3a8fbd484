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
