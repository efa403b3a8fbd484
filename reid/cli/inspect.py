"""The ``reid inspect`` command: layer table, documented-table check, pooling window, first block, FLOPs, weights.

The table shows the global pooling as the assignment documents it, a fixed kernel the size of the final map
(:func:`~reid.report.assignment.documented_network.fixed_kernel_view`); the model itself pools adaptively.

Examples:
    reid inspect --params                      # 72 rows, ✓ vs the documented table, exit 0 when all match
    reid inspect --params --flops              # + fvcore FLOPs per stage
    reid inspect --params --input 3x256x128 --arch resnet34 --last-stride 2
    reid inspect --params --flops --arch resnet50 --input 3x256x128   # 23,508,032 backbone parameters
    reid inspect --params --arch resnet50_ibn_a                 # IBN-a: IN on half of bn1 in layer1-3
    reid inspect --params --arch osnet_x1_0 --input 3x256x128   # 1,905,828 backbone parameters
    reid inspect --params --arch timm:efficientnet_b0 --last-stride 2
    reid inspect --params --last-stride 2 --check   # deliberately different: exits 1 naming the first bad row
    reid inspect specs/quickstart.toml --format json
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from reid.cli.app import FormatOption, OutputFormat, app
from reid.errors import ReidError
from reid.spec import DataSpec, HeadSpec, ModelSpec, load_spec

if TYPE_CHECKING:  # the model package (torch, torchvision) is imported on use: `reid --help` starts in a blink
    from reid.model import ReidModel
    from reid.model.flops import FlopReport
    from reid.model.summary import LayerRow
    from reid.report.assignment.documented_network import Mismatch


def parse_input_size(text: str) -> tuple[int, int, int]:
    """``"3x128x128"`` → ``(3, 128, 128)``; a :class:`ReidError` for anything but three positive integers."""
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ReidError(f"{text!r} is not CxHxW with three positive integers", where="--input", fix="e.g. --input 3x128x128")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def parse_layers(text: str) -> tuple[int, int, int, int]:
    """``"3,4,6,3"`` → ``(3, 4, 6, 3)``; a :class:`ReidError` for anything but four positive integers."""
    parts = text.split(",")
    if len(parts) != 4 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ReidError(f"{text!r} is not four positive block counts", where="--layers", fix="e.g. --layers 2,2,2,2 or 3,4,6,3")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def _model_spec(base: ModelSpec, changes: dict[str, object]) -> ModelSpec:
    try:
        return ModelSpec.model_validate({**base.model_dump(), **{k: v for k, v in changes.items() if v is not None}})
    except ValidationError as e:
        err = e.errors()[0]
        if not err["loc"]:  # a rule across fields (which archs exist, layers with a timm arch)
            raise ReidError(err["msg"].removeprefix("Value error, "), where="--arch") from None
        option = "--" + str(err["loc"][0]).replace("_", "-")
        msg = err["msg"]
        raise ReidError(msg.removeprefix("Value error, ") if msg.startswith("Value error, ") else f"{err['input']!r}: {msg}",
                        where=option) from None


def _head_spec(base: HeadSpec, head_type: str | None) -> HeadSpec:
    try:
        return HeadSpec.model_validate({**base.model_dump(), **({"type": head_type} if head_type else {})})
    except ValidationError as e:
        raise ReidError(e.errors()[0]["msg"].removeprefix("Value error, "), where="--head") from None


def _rows_table(rows: list[LayerRow], mismatches: list[Mismatch] | None) -> Table:
    from reid.model.summary import format_shape

    bad = {m.row for m in mismatches or []}
    table = Table(title="Layers (torchsummary style, batch shown as -1)")
    table.add_column("Layer (type)")
    table.add_column("Output Shape")
    table.add_column("Param #", justify="right")
    if mismatches is not None:
        table.add_column("doc", justify="center")
    for r in rows:
        cells = [r.layer, format_shape(r.output_shape), f"{r.params:,}"]
        if mismatches is not None:
            cells.append("" if r.part != "backbone" else ("[red]✗[/]" if r.index in bad else "[green]✓[/]"))
        table.add_row(*cells)
    return table


def _flops_table(report: FlopReport) -> Table:
    table = Table(title=f"FLOPs for one {'x'.join(map(str, report.input_size))} image")
    table.add_column("Stage")
    table.add_column("FLOPs", justify="right")
    table.add_column("Share", justify="right")
    for stage, n in report.by_stage.items():
        table.add_row(stage, f"{n:,}", f"{100 * n / max(report.total, 1):.1f}%")
    table.add_row("[bold]total[/]", f"[bold]{report.total:,}[/]", f"{report.total / 1e9:.3f} G")
    return table


def _training_identities(data: DataSpec) -> int:
    """The classifier size a run of ``data`` gets: its training identities (counted, for data on disk)."""
    from reid.data.build import prepare_splits
    from reid.data.split import training_identity_count

    if data.dataset == "synthetic":
        n = training_identity_count(data.identities, data.train_ids, data.train_fraction)
        return min(n, data.limit_ids or n)
    try:
        return len({s.pid for s in prepare_splits(data).train})
    except ReidError as e:  # the network needs only the count: say how to give it without the data
        raise ReidError(e.what, where=e.where, fix=f"{e.fix or 'point data.root at the dataset'}; or inspect without "
                        "the data by giving the classifier size: --num-classes N (its training identities, "
                        "751 for Market-1501)") from None


def _describe(m: Mismatch) -> str:
    return f"row {m.row} ({m.layer}): {m.field} expected {m.expected}, got {m.got}"


@app.command("inspect")
def inspect_command(
    spec: Annotated[Optional[Path], typer.Argument(metavar="[SPEC]", help="take model, head and input size from this spec file")] = None,
    params: Annotated[bool, typer.Option("--params", help="Print the layer table, totals, the pooling window and the first block's parameters (the default).")] = False,
    flops: Annotated[bool, typer.Option("--flops", help="Add fvcore FLOP counts per stage.")] = False,
    input_size: Annotated[Optional[str], typer.Option("--input", help="Input size CxHxW, e.g. 3x256x128 (default: 3x128x128, or the spec's data size).")] = None,
    arch: Annotated[Optional[str], typer.Option("--arch", help="resnet18, resnet34, resnet50, resnet101, resnet152, resnet50_ibn_a, resnet101_ibn_a, osnet_x1_0, "
                                                          "or timm:<name> (any timm CNN).")] = None,
    layers: Annotated[Optional[str], typer.Option("--layers", help="Blocks per stage, e.g. 3,4,6,3 (overrides --arch).")] = None,
    last_stride: Annotated[Optional[int], typer.Option("--last-stride", min=1, max=2, help="Stride of the last stage: 1 or 2.")] = None,
    pooling: Annotated[Optional[str], typer.Option("--pooling", help="A registered pooling: avg, max, gem, or your own.")] = None,
    head: Annotated[Optional[str], typer.Option("--head", help="A registered head: none, classifier, bnneck, or your own (default: none, or the spec's).")] = None,
    num_classes: Annotated[Optional[int], typer.Option("--num-classes", min=1, help="Classifier outputs (default with a SPEC: its training identities).")] = None,
    pretrained: Annotated[Optional[str], typer.Option("--pretrained", help='"none", "imagenet" (downloaded once into the torch hub cache), a run directory or a weights file.')] = None,
    spec_option: Annotated[Optional[Path], typer.Option("--spec", hidden=True, help="The older spelling of SPEC.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Compare with the documented table even if the configuration differs.")] = False,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Show the network layer by layer and check it against the documented assignment table.

    Exits 0 when the table matches (or is not compared), 1 naming the mismatching rows.
    """
    spec = spec or spec_option
    loaded = load_spec(spec) if spec is not None else None
    base = loaded.model if loaded else ModelSpec()
    # the table and FLOPs need no weights: a spec's are loaded only when --pretrained asks (no download to inspect)
    skipped = base.pretrained if pretrained is None and base.pretrained != "none" else None
    model_spec = _model_spec(
        base,
        {"arch": arch, "layers": parse_layers(layers) if layers else None, "last_stride": last_stride, "pooling": pooling,
         "pretrained": pretrained if pretrained is not None else "none"},
    )
    head_spec = _head_spec(loaded.head if loaded else HeadSpec(type="none"), head)
    if input_size:
        size = parse_input_size(input_size)
    else:
        size = (3, loaded.data.height, loaded.data.width) if loaded else (3, 128, 128)
    if num_classes is None and loaded and head_spec.type != "none":
        num_classes = _training_identities(loaded.data)
    if head_spec.type != "none" and num_classes is None:
        raise ReidError(f"head {head_spec.type!r} needs a class count", where="--head", fix="add --num-classes N (training identities) or use --head none")
    from reid.model import build_model

    model = build_model(model_spec, head_spec, num_classes, size)
    show_table = params or not flops
    result = _inspect(model, model_spec, size, show_table, flops, check)
    result["config"] = {"model": model_spec.model_dump(mode="json"), "head": head_spec.model_dump(mode="json"), "num_classes": num_classes, "input_size": list(size)}
    result["weights_not_loaded"] = skipped
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(result, indent=2))  # keys in table order (stages), not sorted
    else:
        _print_text(result)
    mismatches = result.get("check", {}).get("mismatches")
    if mismatches:
        from reid.report.assignment.documented_network import Mismatch

        rows = len({m["row"] for m in mismatches})
        Console(stderr=True, highlight=False).print(
            f"[bold red]check failed:[/] {rows} row(s) differ from the documented table; first {_describe(Mismatch(**mismatches[0]))}",
            soft_wrap=True,
        )
        raise typer.Exit(1)


def _inspect(model: ReidModel, model_spec: ModelSpec, size: tuple[int, int, int], show_table: bool, flops: bool, check: bool) -> dict:
    # the documented table belongs to the assignment; imported here, not at start-up (the report package is heavy)
    from reid.model.flops import count_flops
    from reid.model.summary import first_block, layer_table, totals
    from reid.report.assignment.documented_network import (
        compare_with_documented,
        differences_from_documented,
        fixed_kernel_view,
        pooling_geometry,
    )

    result: dict = {"pretrained": asdict(model.pretrained_report) if model.pretrained_report else None}
    if show_table:
        view = fixed_kernel_view(model)  # the global pooling as the documented fixed kernel; same weights
        rows = layer_table(view)
        differences = differences_from_documented(model_spec, size)
        compared = check or not differences
        result["rows"] = [asdict(r) for r in rows]
        result["totals"] = asdict(totals(model))
        geometry = pooling_geometry(model.backbone.feature_size)
        result["pooling"] = {"layer": type(view.backbone.pool).__name__,
                             "module": type(model.backbone.pool).__name__, **asdict(geometry)}
        block = first_block(rows)
        result["first_block"] = {"block": block.block, "rows": [r.layer for r in block.rows], "params": block.params} if block else None
        result["check"] = {
            "compared": compared,
            "differences": differences,
            "mismatches": [asdict(m) for m in compare_with_documented(rows)] if compared else [],
        }
    if flops:
        result["flops"] = asdict(count_flops(model))
    return result


def _print_text(result: dict) -> None:
    from reid.model.flops import FlopReport
    from reid.model.summary import LayerRow

    out = Console(highlight=False)
    report = result["pretrained"]
    if result.get("weights_not_loaded"):
        out.print(f"weights: the spec's pretrained = {result['weights_not_loaded']!r} not loaded (the table needs none); "
                  f"add --pretrained {result['weights_not_loaded']} to check that they load", soft_wrap=True)
    if report:
        discarded = ", ".join(report["discarded"]) or "none"
        out.print(
            f"pretrained: {len(report['loaded'])} tensors loaded from {report['source']}; "
            f"missing: {', '.join(report['missing']) or 'none'}; discarded: {discarded}; "
            f"shape mismatches: {', '.join(k for k, _, _ in report['shape_mismatches']) or 'none'}",
            soft_wrap=True,
        )
    if "rows" in result:
        from reid.report.assignment.documented_network import Mismatch

        chk = result["check"]
        mismatches = [Mismatch(**m) for m in chk["mismatches"]]
        rows = [LayerRow(**r) for r in result["rows"]]
        out.print(_rows_table(rows, mismatches if chk["compared"] else None))
        t = result["totals"]
        out.print(f"Total params: {t['total']:,}\nTrainable params: {t['trainable']:,}\nNon-trainable params: {t['non_trainable']:,}")
        if t["head"]:
            out.print(f"  backbone {t['backbone']:,} + head {t['head']:,}")
        p = result["pooling"]
        fh, fw = p["feature_size"]
        out.print(
            f"global pooling: final feature map {fh}x{fw} → {p['layer']} kernel {p['kernel'][0]}x{p['kernel'][1]}, "
            f"stride {p['stride'][0]} → {p['output_size'][0]}x{p['output_size'][1]} "
            "(the kernel covers the whole map: one window, so the stride does not change the result)"
            + (f"; the model runs {p['module']}, which pools a map of any size the same way" if p["module"] != p["layer"] else ""),
            soft_wrap=True,
        )
        b = result["first_block"]
        if b:
            out.print(f"first residual block ({b['block']}: {b['rows'][0]} … {b['rows'][-1]}): {b['params']:,} parameters")
        if not chk["compared"]:
            out.print(f"documented table: not compared — configuration differs ({'; '.join(chk['differences'])}); add --check to compare anyway", soft_wrap=True)
        elif not mismatches:
            out.print(f"documented table: all {sum(r.part == 'backbone' for r in rows)} rows match ✓")
        else:
            out.print(f"[red]documented table: {len({m.row for m in mismatches})} row(s) differ[/]")
            for m in mismatches:
                out.print(f"  ✗ {_describe(m)}", soft_wrap=True)
    if "flops" in result:
        f = result["flops"]
        out.print(_flops_table(FlopReport(**{**f, "input_size": tuple(f["input_size"])})))
        out.print(f["note"])
        if f["skipped"]:
            out.print("not counted by fvcore: " + ", ".join(f"{op} ×{n}" for op, n in f["skipped"].items()))
