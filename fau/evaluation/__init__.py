"""Everything that scores FAU models: metrics over a split, checkpoint evaluation (`fau eval`),
fold aggregation and report tables, description quality, and the non-neural baselines.

* `fau.evaluation.scores`: `predict_dataset`, `au_scores` / `score_rows` (per-AU / macro F1, accuracy,
  AUC), `grade_scores` (per paralysis grade F1 / accuracy), `alignment_error` (thesis Tab 3.6);
* `fau.evaluation.checkpoint`: `evaluate_checkpoint`;
* `fau.evaluation.report`: `aggregate`, `format_report`, `paper_f1`;
* `fau.evaluation.language`: `language_scores` (VL-FAU's word top-5 and description-state accuracy);
* `fau.evaluation.baselines`: `run_baselines` (majority and landmark logistic regression).
"""
