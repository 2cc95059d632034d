"""Print a retrieval model's parameter counts per top-level module and the total (`retrieval info`).

The model is built from ``--config`` (default: the packaged ``<model>_tiny.yaml``) with any
``key=value`` overrides.  Nothing is loaded: BERT towers are built from their config.json alone
(random weights, same shapes as the pre-trained model), GRU towers need only ``--vocab-size``
(default 8,481, the Flickr30K SCAN vocabulary SMFEA reports).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "parameter counts per top-level module of a retrieval model (--model NAME [--config CFG])"

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
F30K_VOCAB = 8481  # thesis 000 §6.4.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="registered model name (smfea, 3shnet, vsepp, vse_gpo)")
    parser.add_argument("--config", default=None, help="YAML config (default: the packaged <model>_tiny.yaml)")
    parser.add_argument("--vocab-size", type=int, default=F30K_VOCAB,
                        help=f"word vocabulary size for GRU text encoders (default {F30K_VOCAB})")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="dotted config overrides, e.g. model.embed_dim=512")


def parameter_table(model) -> list[tuple[str, int, int]]:
    """(module name, parameters, trainable parameters) per top-level child, in definition order."""
    rows = []
    for name, child in model.named_children():
        params = list(child.parameters())
        rows.append((name, sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)))
    direct = list(model.parameters(recurse=False))
    if direct:
        rows.append(("(own)", sum(p.numel() for p in direct), sum(p.numel() for p in direct if p.requires_grad)))
    return rows


def run(args: argparse.Namespace) -> int:
    from shared.config import load_config
    from shared.errors import UserError

    from retrieval.models import CONFIG_STEMS, MODELS, build_model

    MODELS.get(args.model)  # unknown names fail before any file is read
    if args.vocab_size < 5:
        raise UserError(f"--vocab-size must be at least 5, got {args.vocab_size}")
    stem = CONFIG_STEMS[args.model.lower()]
    path = Path(args.config) if args.config else CONFIG_DIR / f"{stem}_tiny.yaml"
    config = load_config(path, args.overrides)
    if "model" not in config:
        raise UserError(f"config {path}: no 'model' section")
    model = build_model(args.model, config, vocab_size=args.vocab_size, pretrained=False)
    rows = parameter_table(model)
    width = max(len(name) for name, _, _ in rows + [("total", 0, 0)])
    print(f"{args.model} ({path.name}, joint dim {config['model'].get('embed_dim', 'default')})")
    print(f"{'module':<{width}}  {'parameters':>12}  {'trainable':>12}")
    for name, total, trainable in rows:
        print(f"{name:<{width}}  {total:>12,}  {trainable:>12,}")
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{'total':<{width}}  {total:>12,}  {trainable:>12,}")
    return 0
