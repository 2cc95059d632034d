"""FAU datasets: raw-format loaders (BP4D, DISFA, FPara), folds, the tidy table, statistics, prepare.

The prepared-dataset layout that `fau prepare` writes and the models read is documented in
`fau.data.table`.
"""
