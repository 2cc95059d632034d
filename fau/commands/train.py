"""Train a FAU model on one fold of a prepared dataset.

Example: ``fau train --model algrnet --data runs/synfacs/prepared --fold part3 --config algrnet_tiny
--out runs/algrnet train.epochs=4``.  Re-running with the same --out resumes from its last epoch.
Works under ``torchrun --nproc_per_node 2 -m fau train ...``.  VL-FAU's ablations (Tab 5.4) are
``--no-marl``, ``--no-llga`` and ``--no-glga``, shorthands for ``model.marl=false`` etc.
"""

from __future__ import annotations

import argparse

HELP = "train a model (ALGRNet, MGRR-Net, VL-FAU) on a prepared dataset fold"
ABLATIONS = ("marl", "llga", "glga")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="registered model name (see `fau info --list`)")
    parser.add_argument("--data", required=True, help="prepared dataset folder (from `fau prepare`)")
    parser.add_argument("--fold", default="part3", help="fold named by its test part (default part3)")
    parser.add_argument("--config", default=None,
                        help="a dataset of the model (tiny, bp4d, disfa), a packaged config name (algrnet_bp4d) "
                             "or a YAML path (default: the model's tiny config)")
    parser.add_argument("--out", required=True, help="run directory (checkpoints, metrics.jsonl)")
    parser.add_argument("--device", default="auto", help="auto (cuda → cpu), cpu, cuda, cuda:N")
    parser.add_argument("--task", choices=("au", "paralysis"), default=None,
                        help="paralysis: ALGRNet's facial-paralysis grades on FPara-style data (thesis §3.3.4; "
                             "= model.task=paralysis); default: the config's model.task")
    parser.add_argument("--protocol", choices=("paper", "validated"), default=None,
                        help="paper: train on both training parts for the fixed epochs, score the last epoch on the "
                             "test part (OUT/eval.json); validated: select the best epoch on held-out training "
                             "subjects (ours) (default: the config's train.protocol); paper also sets "
                             "train.threshold=fixed (no validation subjects to choose AU thresholds on)")
    parser.add_argument("--init-from", default=None,
                        help="checkpoint to initialise matching tensors from (the DISFA paper configs require a BP4D "
                             "run of the same model; 'none' trains from scratch on purpose)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--no-amp", action="store_true", help="no float16 autocast on CUDA (always off on CPU)")
    for switch in ABLATIONS:
        parser.add_argument(f"--no-{switch}", action="store_true",
                            help=f"VL-FAU ablation: without {switch.upper()} (= model.{switch}=false)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=2")


def run(args: argparse.Namespace) -> int:
    from fau.models import MODELS
    from fau.train import train

    switches = [f"model.{s}=false" for s in ABLATIONS if getattr(args, f"no_{s}")]
    if args.task is not None:
        switches.append(f"model.task={args.task}")
    if args.protocol is not None:
        switches.append(f"train.protocol={args.protocol}")
        if args.protocol == "paper":
            switches.append("train.threshold=fixed")
    config = MODELS.load_config(args.model, args.config, [*args.overrides, *switches])
    best = train(args.model, args.data, args.fold, config, args.out, device=args.device,
                 init_from=args.init_from, show_progress=not args.no_progress, amp=not args.no_amp)
    print(f"best checkpoint: {best}")
    return 0
