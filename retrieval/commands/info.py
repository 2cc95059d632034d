"""Print a retrieval model's parameter counts per top-level module and the total (`retrieval info`), or
with ``--list`` every registered model and its packaged configs per dataset.

The model is built from ``--config`` (default: the model's tiny config) with any
``key=value`` overrides.  Nothing is loaded: BERT towers are built from their config.json alone
(random weights, same shapes as the pre-trained model), GRU towers need only ``--vocab-size``
(default 8,481, the Flickr30K SCAN vocabulary SMFEA reports).
"""

from __future__ import annotations

import argparse

HELP = "parameter counts per top-level module of a retrieval model (--model NAME [--config CFG]), or --list"

F30K_VOCAB = 8481  # the SMFEA thesis chapter, §6.4.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="registered model name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the registered models and their configs")
    parser.add_argument("--config", default=None,
                        help="a dataset of the model (tiny, f30k, coco), a packaged config name or a YAML path "
                             "(default: the model's tiny config)")
    parser.add_argument("--vocab-size", type=int, default=F30K_VOCAB,
                        help=f"word vocabulary size for GRU text encoders (default {F30K_VOCAB})")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="dotted config overrides, e.g. model.embed_dim=512")


def run(args: argparse.Namespace) -> int:
    from retrieval.models import MODELS, build_model
    from shared.errors import UserError
    from shared.modelinfo import format_parameter_table

    if args.list:
        print(MODELS.listing())
        return 0
    if not args.model:
        raise UserError("info needs --model NAME (or --list)")
    MODELS.get(args.model)  # unknown names fail before any file is read
    if args.vocab_size < 5:
        raise UserError(f"--vocab-size must be at least 5, got {args.vocab_size}")
    path = MODELS.config_path(args.model, args.config)
    config = MODELS.load_config(args.model, args.config, args.overrides)
    if "model" not in config:
        raise UserError(f"config {path}: no 'model' section")
    model = build_model(args.model, config, vocab_size=args.vocab_size, pretrained=False)
    print(format_parameter_table(model, f"{args.model} ({path.name}, joint dim {config['model'].get('embed_dim', 'default')})"))
    return 0
