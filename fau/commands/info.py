"""Print a model's parameter counts per top-level module and the total (`fau info`).

The model is built from ``--config`` (default: the packaged ``<model>_tiny.yaml``) with any
``key=value`` overrides; a co-occurrence prior is not needed to count parameters, so a uniform
stand-in of the right shape is used when the config asks for one.
"""

from __future__ import annotations

import argparse

HELP = "parameter counts per top-level module of a FAU model (--model NAME [--config CFG])"

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="registered model name (algrnet, mgrrnet, vlfau)")
    parser.add_argument("--config", default=None,
                        help="YAML path or packaged config name (default: <model>_tiny)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="dotted config overrides, e.g. model.relational.layers=3")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from fau.aus import resolve_aus
    from fau.models import MODELS, build_model
    from fau.train import CONFIG_DIR
    from shared.config import load_config, resolve_config_path
    from shared.errors import UserError
    from shared.modelinfo import format_parameter_table

    MODELS.get(args.model)  # unknown names fail before any file is read
    path = resolve_config_path(args.config or f"{args.model.lower()}_tiny", CONFIG_DIR)
    config = load_config(path, args.overrides)
    if "model" not in config:
        raise UserError(f"config {path}: no 'model' section")
    section = config["model"]
    if section.get("task") == "paralysis":
        from fau.data.fpara import load_pau_definitions

        source = section.get("pau_definitions", "default")
        count = len(load_pau_definitions(None if source == "default" else source).names)
    else:
        count = len(resolve_aus(str(section.get("dataset", ""))))
    model = build_model(args.model, section, count, prior=np.full((count, count), 0.5, dtype=np.float32))
    print(format_parameter_table(model, f"{args.model} ({path.name}, {count} outputs, input {model.input_size}px)"))
    return 0
