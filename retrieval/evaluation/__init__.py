"""Exact retrieval evaluation: metrics and protocols, similarity from the two model interfaces,
saved-matrix ensembles, the SynScenes hard subset and RES metrics."""

from retrieval.evaluation.ensemble import average_sims, load_sims, save_sims
from retrieval.evaluation.hard_subset import hard_subset_metrics, load_hard_groups
from retrieval.evaluation.metrics import (
    METRIC_KEYS, PROTOCOLS, EvalProtocol, average_folds, evaluate_folds, evaluate_protocol, evaluate_sims,
    format_table, mean_recall, retrieval_ranks, rsum,
)
from retrieval.evaluation.similarity import (
    PairwiseModel, TwoTowerModel, compute_similarity, pairwise_similarity, tile_shape, two_tower_similarity,
)

__all__ = [
    "METRIC_KEYS", "PROTOCOLS", "EvalProtocol", "PairwiseModel", "TwoTowerModel", "average_folds", "average_sims",
    "compute_similarity", "evaluate_folds", "evaluate_protocol", "evaluate_sims", "format_table",
    "hard_subset_metrics", "load_hard_groups", "load_sims", "mean_recall", "pairwise_similarity", "retrieval_ranks",
    "rsum", "save_sims", "tile_shape", "two_tower_similarity",
]
