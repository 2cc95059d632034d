"""Parameter counts per top-level module, printed by `fau info` and `retrieval info`."""

from __future__ import annotations

from torch import nn


def parameter_rows(model: nn.Module) -> list[tuple[str, int, int]]:
    """(module name, parameters, trainable parameters) per top-level child, in definition order."""
    rows = []
    for name, child in model.named_children():
        params = list(child.parameters())
        rows.append((name, sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)))
    direct = list(model.parameters(recurse=False))
    if direct:
        rows.append(("(own)", sum(p.numel() for p in direct), sum(p.numel() for p in direct if p.requires_grad)))
    return rows


def format_parameter_table(model: nn.Module, title: str) -> str:
    """`title`, then one ``module  parameters  trainable`` row per top-level module, then the total."""
    rows = parameter_rows(model)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    width = max(len(name) for name, _, _ in rows + [("total", 0, 0)])
    lines = [title, f"{'module':<{width}}  {'parameters':>12}  {'trainable':>12}"]
    lines += [f"{name:<{width}}  {n:>12,}  {t:>12,}" for name, n, t in rows]
    lines.append(f"{'total':<{width}}  {total:>12,}  {trainable:>12,}")
    return "\n".join(lines)
