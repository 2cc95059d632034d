"""Print a model's parameter counts per top-level module and the total (`fau info`), or with
``--list`` every registered model and its packaged configs per dataset.

The model is built from ``--config`` (default: the model's tiny config) with any ``key=value``
overrides; a co-occurrence prior is not needed to count parameters, so a uniform stand-in of the
right shape is used when the config asks for one.
"""

from __future__ import annotations

import argparse

HELP = "parameter counts per top-level module of a FAU model (--model NAME [--config CFG]), or --list"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="registered model name (algrnet, mgrrnet, vlfau)")
    parser.add_argument("--list", action="store_true", help="list the registered models and their configs")
    parser.add_argument("--config", default=None,
                        help="a dataset of the model (tiny, bp4d, disfa), a packaged config name or a YAML path "
                             "(default: the model's tiny config)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="dotted config overrides, e.g. model.relational.layers=3")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from fau.models import MODELS
    from shared.config import from_dict
    from shared.errors import UserError
    from shared.modelinfo import format_parameter_table

    if args.list:
        print(MODELS.listing())
        return 0
    if not args.model:
        raise UserError("info needs --model NAME (or --list)")
    entry = MODELS.get(args.model)  # unknown names fail before any file is read
    path = MODELS.config_path(args.model, args.config)
    config = MODELS.load_config(args.model, args.config, args.overrides)
    if "model" not in config:
        raise UserError(f"config {path}: no 'model' section")
    settings = from_dict(entry.cls.Config, entry.cls.without_pretrained(config["model"]), "model")
    count = entry.cls.num_outputs(settings)
    model = entry.cls(settings, num_aus=count, prior=np.full((count, count), 0.5, dtype=np.float32))
    print(format_parameter_table(model, f"{entry.name} ({path.name}, {count} outputs, input {model.input_size}px)"))
    return 0
