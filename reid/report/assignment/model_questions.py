"""Q1–Q5 and Q7: questions about the network itself, answered by building and measuring it.

The network is the assignment's: ``ModelSpec()`` defaults (ResNet-18, last stride 1, average
pooling) for a 3×128×128 input; nothing here needs a run, a dataset or an evaluation.
"""

from __future__ import annotations

import re
from functools import lru_cache

import torch
from torch import nn

from reid.model import ReidModel, build_model
from reid.model.flops import FlopReport, count_flops
from reid.model.heads import build_head
from reid.model.pretrained import IMAGENET_WEIGHTS, imagenet_weights_path, load_pretrained, load_state_dict_into
from reid.model.summary import LayerRow, first_block, format_shape, totals
from reid.report.assignment.documented_network import (
    DOCUMENTED_INPUT,
    check_avgpool_as_conv,
    compare_with_documented,
    differences_from_documented,
    documented_layer_table,
    load_documented_table,
    pooling_geometry,
)
from reid.report.assignment.section import ReportContext, Section
from reid.report.markdown import bullets, count, table
from reid.spec import HeadSpec, ModelSpec

_BLOCK = re.compile(r"^backbone\.layer\d+\.\d+$")
_POOL_NAMES = {"AvgPool2d": "Average pooling", "MaxPool2d": "Max pooling", "GeM": "GeM pooling"}


def assignment_model() -> ReidModel:
    """The documented network: ``ModelSpec()`` defaults, no head, 3×128×128 input (a fresh one each call)."""
    return build_model(ModelSpec(), HeadSpec(type="none"), None, DOCUMENTED_INPUT)


@lru_cache(maxsize=1)
def assignment_table() -> tuple[ReidModel, tuple[LayerRow, ...]]:
    """The documented network and its layer table (pooling shown as the documented fixed kernel), built once per
    process (read-only: do not modify)."""
    model = assignment_model()
    return model, tuple(documented_layer_table(model))


@lru_cache(maxsize=1)
def assignment_flops() -> FlopReport:
    """fvcore FLOPs of the documented network, counted once per process."""
    return count_flops(assignment_table()[0])


def source_line(ctx: ReportContext) -> str:
    """Where a model answer comes from, and how the Q8 run's network differs from it (if it does)."""
    spec = ModelSpec()
    size = "×".join(str(n) for n in DOCUMENTED_INPUT)
    line = (f"- **Source:** computed from the model code — `build_model(ModelSpec(), HeadSpec(type=\"none\"))`: "
            f"{spec.arch}, last stride {spec.last_stride}, {spec.pooling} pooling, input {size}. "
            "Measured on the network itself: no dataset or evaluation protocol is involved.")
    run = ctx.assigned["q8"]
    if run is not None:
        diff = differences_from_documented(run.spec.model, (3, run.spec.data.height, run.spec.data.width))
        if diff:
            line += (f"\n- **Note:** the Q8 run `{run.path}` uses a different configuration ({'; '.join(diff)}); "
                     "this answer describes the assignment's network.")
    return line


def shape_text(shape: list[int]) -> str:
    """``[-1, 64, 32, 32]`` → ``64×32×32``."""
    return "×".join(str(n) for n in shape[1:])


def pipeline(model: ReidModel, rows: list[LayerRow]) -> list[tuple[str, str, str]]:
    """The stage-by-stage shapes (stage, output C×H×W, table row), derived from the layer table.

    A residual block whose shortcut is a projection (1×1 conv + BN) is a ``ResBlock-D``.
    """
    out = [("Input", "×".join(str(n) for n in model.backbone.input_size), "")]
    for r in rows:
        if r.module == "backbone.relu" and not any(s[0] == "Conv+BN+ReLU" for s in out):
            out.append(("Conv+BN+ReLU", shape_text(r.output_shape), r.layer))
        elif r.module == "backbone.maxpool":
            out.append(("Max pooling", shape_text(r.output_shape), r.layer))
        elif _BLOCK.match(r.module):
            projected = not isinstance(model.get_submodule(r.module).downsample, nn.Identity)
            out.append(("ResBlock-D" if projected else "ResBlock", shape_text(r.output_shape), r.layer))
        elif r.module == "backbone.pool":
            out.append((_POOL_NAMES.get(r.layer.split("-")[0], r.layer), shape_text(r.output_shape), r.layer))
    return out


def q1(ctx: ReportContext) -> Section:
    """Q1: the layer table checked against the documented one, totals, shape pipeline, FLOPs."""
    model, rows = assignment_table()
    rows = list(rows)
    mismatches = compare_with_documented(rows)
    bad = {m.row for m in mismatches}
    documented = load_documented_table()
    t = totals(model)
    backbone_rows = [r for r in rows if r.part == "backbone"]
    verdict = (f"All {len(backbone_rows)} rows match the documented table (name, output shape, parameters) ✓."
               if not mismatches else
               f"{len(bad)} row(s) differ from the documented table ✗: " +
               "; ".join(f"row {m.row} ({m.layer}) {m.field}: documented {m.expected}, built {m.got}" for m in mismatches))
    layer_rows = [[r.index, r.layer, format_shape(r.output_shape), count(r.params), "✗" if r.index in bad else "✓"]
                  for r in rows]
    stages = pipeline(model, rows)
    flops = assignment_flops()
    flop_rows = [[stage, count(n), f"{100 * n / max(flops.total, 1):.1f} %"] for stage, n in flops.by_stage.items()]
    flop_rows.append(["**total**", f"**{count(flops.total)}**", f"{flops.total / 1e9:.3f} GFLOPs"])
    body = "\n\n".join([
        source_line(ctx),
        "**Question.** List the network's layers with their output shapes and parameter counts, and trace the "
        "feature-map shape through the network.",
        f"**Check.** {verdict} The documented table has {len(documented)} rows; the table below is produced by "
        "forward hooks on every layer (`reid.model.summary.layer_table`), named `<Class>-<index>` like torchsummary, "
        "with the global pooling shown as the documented fixed-kernel `AvgPool2d` (`documented_layer_table`; the "
        "model itself runs `AdaptiveAvgPool2d(1)`, the same computation at this size, see Q2); "
        "the ✓/✗ column compares each row with the documented one (`compare_with_documented`).",
        "## Layer table (batch dimension shown as -1)",
        table(["#", "Layer (type)", "Output Shape", "Param #", "documented"], layer_rows, align="rllrc"),
        "## Totals",
        table(["", "parameters"], [["Total params", count(t.total)], ["Trainable params", count(t.trainable)],
                                    ["Non-trainable params", count(t.non_trainable)],
                                    ["Sum of the table's Param # column", count(sum(r.params for r in rows))]],
              align="lr"),
        "## Shape pipeline",
        " → ".join(f"{name} {shape}" for name, shape, _ in stages),
        table(["stage", "output (C×H×W)", "row"], stages, align="lll"),
        "A ResBlock-D is a residual block whose shortcut is a 1×1 convolution + BN (its input and output shapes "
        "differ); the others add the input unchanged (`Identity`).",
        "## Compute per stage",
        table(["stage", "FLOPs (one image)", "share"], flop_rows, align="lrr"),
        f"Counted with fvcore: {flops.note}.",
    ])
    return Section(1, "Layer table and shape pipeline", "the layer table checked row by row, totals, the shape pipeline, FLOPs", body)


def q2(ctx: ReportContext) -> Section:
    """Q2: the global pooling kernel and stride, from the final feature map."""
    model, rows = assignment_table()
    last_block = [r for r in rows if _BLOCK.match(r.module)][-1]
    pool_row = next(r for r in rows if r.module == "backbone.pool")
    g = pooling_geometry(model.backbone.feature_size)
    x = torch.randn(2, model.embedding_dim, *g.feature_size, generator=torch.Generator().manual_seed(0))
    pooled = nn.AvgPool2d(g.kernel, stride=g.stride)(x).flatten(1)
    diff = (pooled - x.mean(dim=(2, 3))).abs().max().item()
    body = "\n\n".join([
        source_line(ctx),
        "**Question.** What kernel size and stride does the average-pooling layer need to turn the last feature "
        "map into a 1×1 map?",
        f"**Answer.** Kernel size = **{g.kernel[0]} × {g.kernel[1]}**, stride = **{g.stride[0]}**.",
        table(["", "value", "from"], [
            ["final feature map", shape_text(last_block.output_shape), f"{last_block.layer} (last residual block)"],
            ["pooling kernel", f"{g.kernel[0]}×{g.kernel[1]}", "= the final map's height × width"],
            ["stride", f"{g.stride[0]}", "one window covers the map, so the stride never moves it"],
            ["output", shape_text(pool_row.output_shape), pool_row.layer],
        ], align="lll"),
        f"The map size follows from the input by stride arithmetic: {' → '.join(s for _, s, _ in pipeline(model, rows))}. "
        f"With a kernel as large as the map there is exactly one window, so the layer is global average pooling: "
        f"measured on a random {model.embedding_dim}×{g.feature_size[0]}×{g.feature_size[1]} map, its output differs "
        f"from the per-channel mean by at most {diff:.1e}. reid's model runs it as `nn.AdaptiveAvgPool2d(1)`, which "
        f"chooses the window from the map it is given: the same {g.kernel[0]}×{g.kernel[1]} window here, and any "
        "other input size still pools to 1×1.",
    ])
    return Section(2, "Pooling kernel and stride", "the pooling kernel and stride, derived from the final feature map", body)


def q3(ctx: ReportContext) -> Section:
    """Q3: average pooling as a convolution — measured equivalence and parameter counts."""
    model, _ = assignment_table()
    c, (h, w) = model.embedding_dim, model.backbone.feature_size
    glob = check_avgpool_as_conv(c, h, w)
    local = check_avgpool_as_conv(c, h, w, kernel=(2, 2))
    rows = [[f"global {glob.kernel[0]}×{glob.kernel[1]}, stride {glob.stride[0]}", f"{glob.max_abs_diff:.1e}",
             count(glob.pool_params), count(glob.conv_params), count(glob.full_conv_params)],
            [f"local {local.kernel[0]}×{local.kernel[1]}, stride {local.stride[0]}", f"{local.max_abs_diff:.1e}",
             count(local.pool_params), count(local.conv_params), count(local.full_conv_params)]]
    k = glob.kernel[0] * glob.kernel[1]
    body = "\n\n".join([
        source_line(ctx),
        "**Question.** Could a convolution replace the average-pooling layer? How?",
        f"**Answer.** Yes. A convolution with the pool's kernel, stride and padding, **no bias**, and every weight "
        f"equal to **1/k² = 1/{k}** (the weights sum to one, so each output is the window's mean) computes exactly "
        f"what average pooling computes. Make it **depthwise** (`groups = channels`, {c} → {c}): each output channel "
        f"then averages only its own input channel. A full convolution can do the same only with all cross-channel "
        f"weights set to zero, i.e. {c}× more weights doing nothing. Average pooling is thus a special case of "
        "convolution whose weights are fixed instead of learned — the pool itself has no parameters.",
        "**Measured** (`reid.report.assignment.documented_network.check_avgpool_as_conv`: both layers applied to the same random "
        f"{c}-channel {h}×{w} input):",
        table(["pooling", "max abs difference", "AvgPool2d params", "depthwise conv params", "full conv params"],
              rows, align="lrrrr"),
        f"The depthwise convolution's {count(glob.conv_params)} weights are {c}·{glob.kernel[0]}·{glob.kernel[1]}; "
        f"a full convolution would hold {c}·{c}·{glob.kernel[0]}·{glob.kernel[1]} = {count(glob.full_conv_params)}. "
        "If such a convolution were trained, it could learn a weighted (e.g. centre-heavy) pooling instead of the "
        "plain mean; to stay equivalent its weights must be frozen.",
    ])
    return Section(3, "Average pooling as a convolution", "average pooling as a depthwise convolution, measured", body)


def q4(ctx: ReportContext) -> Section:
    """Q4: the parameters of the first residual block, with its rows."""
    _, rows = assignment_table()
    block = first_block(list(rows))
    nonzero = [r for r in block.rows if r.params]
    body = "\n\n".join([
        source_line(ctx),
        "**Question.** How many trainable parameters does the first residual block have?",
        f"**Answer.** **{count(block.params)}** trainable parameters "
        f"({' + '.join(count(r.params) for r in nonzero)}).",
        f"The block is `{block.block}` (`backbone.layer1.0`); its rows:",
        table(["Layer (type)", "module", "Output Shape", "Param #", "trainable"],
              [[r.layer, f"`{r.module}`", format_shape(r.output_shape), count(r.params), count(r.trainable)]
               for r in block.rows], align="lllrr"),
        "Each 3×3 convolution maps 64 to 64 channels without bias (3·3·64·64 weights); each BatchNorm has a "
        "scale and a shift per channel (2·64); ReLU and the identity shortcut have none. BatchNorm's running mean "
        "and variance are buffers, not parameters.",
    ])
    return Section(4, "Parameters of the first residual block", "the first residual block's parameters, row by row", body)


def _key_groups(keys: list[str]) -> list[list[str]]:
    groups: dict[str, int] = {}
    for key in keys:
        stage = key.split(".")[0]
        groups[stage] = groups.get(stage, 0) + 1
    return [[f"`{stage}`", count(n)] for stage, n in groups.items()]


def q5(ctx: ReportContext) -> Section:
    """Q5: which ImageNet tensors load into the network, from the hub cache or on the structure alone."""
    import torchvision

    arch = ModelSpec().arch
    path = imagenet_weights_path(arch)
    backbone = assignment_model().backbone
    if path.is_file():
        report = load_pretrained(backbone, "imagenet", arch)
        how = f"Loaded torchvision's ImageNet weights from `{path}`."
    else:
        state = torchvision.models.get_model(arch, weights=None).state_dict()
        report = load_state_dict_into(backbone, state, source=f"torchvision {arch}(weights=None)")
        how = (f"The ImageNet file `{path.name}` is not in the torch hub cache (nothing is downloaded). To load the "
               f"real weights, copy it (from {IMAGENET_WEIGHTS[arch]}) into `{path.parent}` and regenerate the "
               f"report. Below, the mapping is shown on the structure alone: the state dict of torchvision's "
               f"`{arch}(weights=None)` — the same keys and shapes as the ImageNet file — mapped onto our backbone.")
    body = "\n\n".join([
        source_line(ctx),
        "**Question.** Which layers of the modified ResNet-18 cannot load the ImageNet-pretrained weights, and "
        "which pretrained weights are discarded?",
        how,
        f"**Answer.** {'Every backbone tensor loads' if report.complete else 'Some backbone tensors do not load'}: "
        f"{count(len(report.loaded))} tensors loaded, {count(len(report.missing))} missing, "
        f"{count(len(report.shape_mismatches))} with a different shape. Discarded (in the file, no place in our "
        f"model): {', '.join(f'`{k}`' for k in report.discarded) or 'none'} — torchvision's 1000-way ImageNet "
        "classifier, which a re-ID model replaces by its own head. The last stride of 1 and the 8×8 pooling change "
        "no tensor shapes (strides and pooling windows hold no weights), so nothing else is lost.",
        table(["result", "keys"], [
            ["loaded", count(len(report.loaded))],
            ["missing in the file", ", ".join(f"`{k}`" for k in report.missing) or "none"],
            ["shape mismatches", ", ".join(f"`{k}` {a}→{b}" for k, a, b in report.shape_mismatches) or "none"],
            ["discarded from the file", ", ".join(f"`{k}`" for k in report.discarded) or "none"],
        ], align="ll"),
        "Loaded tensors per part of the backbone (weights, biases and BatchNorm running statistics):",
        table(["part", "tensors loaded"], _key_groups(report.loaded), align="lr"),
        bullets([f"`{k}`: cannot be found in our model" for k in report.discarded]),
    ])
    return Section(5, "Pretrained weights", "which ImageNet tensors load, are missing or are discarded", body)


def dropout_measurements(p: float, n: int = 100_000, seed: int = 0) -> dict:
    """Measure ``nn.Dropout(p)`` on ``n`` ones and a classifier head in train and eval mode (seeded, no global RNG change)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        drop = nn.Dropout(p)
        x = torch.ones(n)
        drop.train()
        a, b = drop(x), drop(x)
        drop.eval()
        e1, e2 = drop(x), drop(x)
        head = build_head(HeadSpec(type="classifier", dropout=p), dim=512, num_classes=10)
        feats = torch.randn(4, 512)
        head.train()
        with torch.no_grad():
            t1, t2 = head(feats)[1], head(feats)[1]
            head.eval()
            v1, v2 = head(feats)[1], head(feats)[1]
    survivors = a[a != 0]
    return {
        "p": p, "n": n,
        "zeroed": float((a == 0).float().mean()),
        "survivor_values": sorted({round(float(v), 6) for v in survivors.unique()}),
        "train_mean": float(a.mean()),
        "train_runs_differ": float((a != b).float().mean()),
        "eval_equals_input": bool(torch.equal(e1, x)),
        "eval_runs_equal": bool(torch.equal(e1, e2)),
        "head_train_diff": float((t1 - t2).abs().max()),
        "head_eval_diff": float((v1 - v2).abs().max()),
    }


def q7(ctx: ReportContext) -> Section:
    """Q7: what dropout does, measured, next to why it helps."""
    run = ctx.assigned["q8"]
    p = run.spec.head.dropout if run is not None else HeadSpec().dropout
    where = f"the Q8 run's `head.dropout` (`{run.path}`)" if run is not None else "the default `head.dropout`"
    m = dropout_measurements(p)
    scale = 1 / (1 - p)
    body = "\n\n".join([
        source_line(ctx),
        "**Question.** What does the dropout layer do, and why is it useful?",
        f"**Measured** with p = {p} ({where}), on {count(m['n'])} activations equal to 1 and on the "
        "dropout + FC classifier head (10 classes, 4 random 512-d features):",
        table(["measurement", "value", "expected"], [
            ["train mode: fraction of activations zeroed", f"{m['zeroed']:.4f}", f"≈ p = {p}"],
            ["train mode: value of the surviving activations", ", ".join(f"{v:g}" for v in m["survivor_values"]),
             f"1/(1−p) = {scale:g}"],
            ["train mode: mean activation", f"{m['train_mean']:.4f}", "≈ 1 (unchanged in expectation)"],
            ["train mode: share of positions that differ between two passes", f"{m['train_runs_differ']:.4f}",
             f"≈ 2p(1−p) = {2 * p * (1 - p):.4f}"],
            ["train mode: classifier logits, max difference between two passes", f"{m['head_train_diff']:.4f}", "> 0 (random)"],
            ["eval mode: output equals input", "yes" if m["eval_equals_input"] else "no", "yes"],
            ["eval mode: two passes identical", "yes" if m["eval_runs_equal"] else "no", "yes"],
            ["eval mode: classifier logits, max difference between two passes", f"{m['head_eval_diff']:.4f}", "0 (deterministic)"],
        ], align="lrl"),
        "**Answer.** During training, dropout sets each activation to zero independently with probability p and "
        f"multiplies the survivors by 1/(1−p) (here {scale:g}), so the expected activation is unchanged and nothing "
        "needs rescaling at test time; in eval mode it is the identity, so predictions are deterministic. Every "
        "training step therefore trains a different random sub-network, all sharing weights — training a large "
        "ensemble of thinned networks whose average the full network approximates at test time. Because any unit "
        "may vanish, units cannot rely on specific partners (it prevents co-adaptation of features) and the "
        "network learns redundant representations, which reduces overfitting.",
        "In this model the dropout sits in the classifier head, between the 512-d embedding and the FC layer: it "
        "regularises the ID-loss classifier; the retrieval embedding is taken before it and is unaffected.",
    ])
    return Section(7, "Dropout", "what dropout does (measured in train and eval mode) and why it helps", body,
                   [str(run.path)] if run is not None else [])
