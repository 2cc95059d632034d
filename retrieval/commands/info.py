"""Print a retrieval model's parameter counts per top-level module and the total (`retrieval info`).

The model is built from ``--config`` (default: the packaged ``<model>_tiny.yaml``) with any
``key=value`` overrides.  Nothing is loaded: BERT towers are built from their config.json alone
(random weights, same shapes as the pre-trained model), GRU towers need only ``--vocab-size``
(default 8,481, the Flickr30K SCAN vocabulary SMFEA reports).
"""

from __future__ import annotations

import argparse

HELP = "parameter counts per top-level module of a retrieval model (--model NAME [--config CFG])"

F30K_VOCAB = 8481  # thesis 000 §6.4.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="registered model name (smfea, 3shnet, vsepp, vse_gpo)")
    parser.add_argument("--config", default=None, help="YAML path or packaged config name (default: <model>_tiny)")
    parser.add_argument("--vocab-size", type=int, default=F30K_VOCAB,
                        help=f"word vocabulary size for GRU text encoders (default {F30K_VOCAB})")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="dotted config overrides, e.g. model.embed_dim=512")


def run(args: argparse.Namespace) -> int:
    from retrieval.models import CONFIG_STEMS, MODELS, build_model
    from retrieval.train import CONFIG_DIR
    from shared.config import load_config, resolve_config_path
    from shared.errors import UserError
    from shared.modelinfo import format_parameter_table

    MODELS.get(args.model)  # unknown names fail before any file is read
    if args.vocab_size < 5:
        raise UserError(f"--vocab-size must be at least 5, got {args.vocab_size}")
    stem = CONFIG_STEMS[args.model.lower()]
    path = resolve_config_path(args.config or f"{stem}_tiny", CONFIG_DIR)
    config = load_config(path, args.overrides)
    if "model" not in config:
        raise UserError(f"config {path}: no 'model' section")
    model = build_model(args.model, config, vocab_size=args.vocab_size, pretrained=False)
    print(format_parameter_table(model, f"{args.model} ({path.name}, joint dim {config['model'].get('embed_dim', 'default')})"))
    return 0
