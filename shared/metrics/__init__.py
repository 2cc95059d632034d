"""Metrics both tasks use: multi-label classification scores and the retrieval rank kernel."""

from shared.metrics.multilabel import MultilabelCounts, multilabel_accuracy, multilabel_auc, multilabel_f1
from shared.metrics.ranking import positive_ranks

__all__ = ["MultilabelCounts", "multilabel_accuracy", "multilabel_auc", "multilabel_f1", "positive_ranks"]
