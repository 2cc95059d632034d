"""Score saved similarity matrices (images × captions); several files are averaged (ensemble).

The matrices are memory-mapped and read front to back, one row block at a time, in their own
dtype: both directions of every fold come from one pass (`shared.metrics.grouped_ranks`), so a
5,000 × 25,000 float64 file is neither converted nor copied nor read column-wise.  Several files are
averaged block by block with the float32 arithmetic of `retrieval.evaluation.average_sims`.
"""

from __future__ import annotations

import argparse

import numpy as np

HELP = "score saved similarity matrices (.npy, images x captions); several = ensemble average"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `retrieval evaluate-sims`."""
    parser.add_argument("sims", nargs="+", metavar="SIMS.npy", help="saved (N_img, 5*N_img) similarity matrices")
    parser.add_argument("--protocol", required=True, choices=("f30k", "coco1k", "coco5k", "full"),
                        help="f30k: 1K x 5K; coco1k: 5 folds of 1K averaged; coco5k: 5K x 25K; full: any N x 5N")
    parser.add_argument("--json", metavar="OUT", help="write the metrics as JSON here")
    parser.add_argument("--hard", metavar="HARD.json", help="also score the SynScenes hard subset ({split}_hard.json)")


class MeanOfFiles:
    """The element-wise mean of several memory-mapped matrices of one shape, computed per slice.

    Each slice repeats `average_sims`' arithmetic (float32 start, in-place adds, one division), so
    a block equals the same block of the averaged matrix bit for bit, without holding the average.
    """

    def __init__(self, matrices: list[np.ndarray], source: str) -> None:
        self.matrices, self.source = matrices, source
        self.shape = matrices[0].shape

    def fold(self, rows: slice, cols: slice) -> "MeanOfFiles":
        """The mean restricted to a fold (views of the memory maps, nothing read)."""
        return MeanOfFiles([matrix[rows, cols] for matrix in self.matrices], self.source)

    def __getitem__(self, key) -> np.ndarray:
        from shared.errors import UserError

        with np.errstate(over="ignore"):  # an overflow is reported below, by name
            total = np.array(self.matrices[0][key], dtype=np.float32)
            for matrix in self.matrices[1:]:
                total += matrix[key]
            total /= len(self.matrices)
        if not np.isfinite(total).all():  # every file is finite (load_sims): only float32 overflow gets here
            raise UserError(f"{self.source}: the float32 average overflows (scores beyond ±3.4e38 cannot be ranked)")
        return total


def load_all(paths: list[str], source: str) -> np.ndarray | MeanOfFiles:
    """One checked memory map, or the lazy mean of several (each checked, shapes equal); one-line errors."""
    from retrieval.evaluation import load_sims
    from shared.errors import UserError

    matrices = [load_sims(paths[0])]
    for path in paths[1:]:
        matrix = load_sims(path)
        if matrix.shape != matrices[0].shape:
            raise UserError(f"{path}: shape {matrix.shape} does not match {paths[0]} shape {matrices[0].shape}")
        matrices.append(matrix)
    return matrices[0] if len(matrices) == 1 else MeanOfFiles(matrices, source)


def protocol_metrics(sims: np.ndarray | MeanOfFiles, protocol: str) -> dict[str, float]:
    """`retrieval.evaluation.evaluate_protocol`'s record, from one streamed pass per fold."""
    from retrieval.evaluation.metrics import average_folds, metrics_from_ranks, protocol_folds, resolve_protocol
    from shared.metrics.ranking import grouped_ranks

    proto = resolve_protocol(protocol)
    records = []
    for rows, cols in protocol_folds(sims, proto):
        fold = sims.fold(rows, cols) if isinstance(sims, MeanOfFiles) else sims[rows, cols]
        records.append(metrics_from_ranks(*grouped_ranks(fold, proto.captions_per_image)))
    return average_folds(records)


def run(args: argparse.Namespace) -> int:
    """Average the matrices, score them under the protocol (pessimistic ties), print, save JSON.

    A NaN or ±inf score is a one-line error naming the file that holds it (exit status 2)."""
    from retrieval.evaluation import average_sims, format_table, hard_subset_metrics, load_hard_groups
    from shared.io import write_json

    source = args.sims[0] if len(args.sims) == 1 else f"average of {' + '.join(args.sims)}"
    sims = load_all(args.sims, source)
    metrics = protocol_metrics(sims, args.protocol)
    title = f"{args.protocol}: {' + '.join(args.sims)}" if len(args.sims) > 1 else f"{args.protocol}: {args.sims[0]}"
    print(format_table(metrics, title))
    record: dict = dict(metrics)
    if args.hard:
        groups = load_hard_groups(args.hard)
        hard = hard_subset_metrics(sims if isinstance(sims, np.ndarray) else average_sims(args.sims), groups)
        print(format_table(hard["subset"], f"hard subset ({hard['n_images']} images, {hard['n_groups']} groups)"))
        print(f"within-group R@1: i2t {hard['group_i2t_r1']:.2f}  t2i {hard['group_t2i_r1']:.2f}  (chance {hard['group_chance_r1']:.2f})")
        record["hard"] = hard
    if args.json:
        write_json(args.json, record)
    return 0
