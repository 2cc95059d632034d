"""SynFACS report: per-AU prevalence, AU co-occurrence, and a contact sheet of sample faces.

Outputs (in the dataset folder): ``synfacs_report.json`` (prevalence, conditional co-occurrence
P(AU_j | AU_i), phi correlation of occurrences, strongest pairs), ``synfacs_cooccurrence.csv``
(the P(AU_j | AU_i) matrix, rows i, columns j) and ``synfacs_contact_sheet.png``.
Occurrence here is the ground truth: integer intensity >= 2 (writer.OCCURRENCE_MIN_INTENSITY),
on every frame, occluded or not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fau.aus import SYNFACS_AUS, au_names
from fau.synth.writer import OCCURRENCE_MIN_INTENSITY
from shared.io import atomic_open, atomic_path, write_json

REPORT_JSON = "synfacs_report.json"
COOCCURRENCE_CSV = "synfacs_cooccurrence.csv"
CONTACT_SHEET = "synfacs_contact_sheet.png"


def prevalence(labels: np.ndarray) -> dict[str, dict[str, float]]:
    """Per AU: occurrence rate (intensity >= 2), rate of any trace (>= 1), mean intensity."""
    occ = labels >= OCCURRENCE_MIN_INTENSITY
    return {name: {"occurrence": round(float(occ[:, k].mean()), 4),
                   "trace_or_more": round(float((labels[:, k] >= 1).mean()), 4),
                   "mean_intensity": round(float(labels[:, k].mean()), 3)}
            for k, name in enumerate(au_names(SYNFACS_AUS))}


def conditional_cooccurrence(occ: np.ndarray) -> np.ndarray:
    """P(AU_j = 1 | AU_i = 1), shape (A, A); rows of AUs that never occur are 0."""
    occ = occ.astype(np.float64)
    joint = occ.T @ occ
    counts = np.diag(joint)
    return np.divide(joint, counts[:, None], out=np.zeros_like(joint), where=counts[:, None] > 0)


def phi_matrix(occ: np.ndarray) -> np.ndarray:
    """Phi (Pearson on 0/1) correlation between AU occurrences; 0 for constant columns."""
    x = occ.astype(np.float64) - occ.mean(0)
    std = np.sqrt((x ** 2).mean(0))
    cov = x.T @ x / len(x)
    denom = std[:, None] * std[None, :]
    return np.divide(cov, denom, out=np.zeros_like(cov), where=denom > 0)


def top_pairs(phi: np.ndarray, cond: np.ndarray, k: int = 10) -> list[dict]:
    """The `k` AU pairs with the largest phi correlation."""
    names = au_names(SYNFACS_AUS)
    pairs = [(phi[i, j], i, j) for i in range(len(names)) for j in range(i + 1, len(names))]
    pairs.sort(reverse=True)
    return [{"pair": f"{names[i]}+{names[j]}", "phi": round(float(p), 3),
             f"P({names[j]}|{names[i]})": round(float(cond[i, j]), 3),
             f"P({names[i]}|{names[j]})": round(float(cond[j, i]), 3)} for p, i, j in pairs[:k]]


def contact_sheet_frames(arrays: dict[str, np.ndarray], limit: int = 24) -> list[int]:
    """Frames showing each AU most on its own, each expression at its apex, and a neutral face."""
    labels = arrays["intensity"]
    chosen: list[int] = [int(np.argmin(labels.sum(1)))]
    for k in range(labels.shape[1]):
        score = labels[:, k] - 0.35 * (labels.sum(1) - labels[:, k])
        chosen.append(int(np.argmax(score)))
    for e in range(arrays["expressions"].shape[1]):
        chosen.append(int(np.argmax(arrays["expressions"][:, e] + 0.01 * labels.sum(1))))
    unique = list(dict.fromkeys(chosen))
    return unique[:limit]


def contact_sheet(out: Path, arrays: dict[str, np.ndarray], columns: int = 6) -> Path:
    """Contact sheet PNG: sample frames titled with subject/sequence/frame and active AUs."""
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = contact_sheet_frames(arrays)
    rows = -(-len(frames) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 3.7 * rows))
    names = au_names(SYNFACS_AUS)
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, index in zip(np.atleast_1d(axes).ravel(), frames):
        image = cv2.imread(str(out / str(arrays["path"][index])))
        ax.imshow(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        labels = arrays["labels"][index]
        active = [f"{names[k]}({labels[k]})" for k in range(len(names))
                  if labels[k] >= OCCURRENCE_MIN_INTENSITY]
        lines = [" ".join(active[i:i + 4]) for i in range(0, len(active), 4)] or ["no AU >= 2"]
        head = f"{arrays['subject'][index]} {arrays['sequence'][index]} #{arrays['frame'][index]}"
        ax.set_title("\n".join([head] + lines), fontsize=7)
    fig.suptitle("SynFACS samples: subject task #frame, AUs with intensity >= 2 (0-5)",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path = out / CONTACT_SHEET
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path


def write_report(out: Path, arrays: dict[str, np.ndarray]) -> dict:
    """Write the JSON report, the co-occurrence CSV and the contact sheet; return the report."""
    labels = arrays["labels"]
    occ = labels >= OCCURRENCE_MIN_INTENSITY
    cond = conditional_cooccurrence(occ)
    phi = phi_matrix(occ)
    names = au_names(SYNFACS_AUS)
    report = {
        "frames": int(len(labels)),
        "occurrence_min_intensity": OCCURRENCE_MIN_INTENSITY,
        "prevalence": prevalence(labels),
        "unknown_rate": round(float(arrays["unknown"].mean()), 5),
        "occluded_frames": int(arrays["occluded"].sum()),
        "top_pairs": top_pairs(phi, cond),
        "aus": names,
        "cooccurrence_conditional": np.round(cond, 4).tolist(),
        "phi": np.round(phi, 4).tolist(),
    }
    write_json(out / REPORT_JSON, report)
    with atomic_open(out / COOCCURRENCE_CSV, "w", encoding="utf-8") as handle:
        handle.write("AU_i \\ AU_j," + ",".join(names) + "\n")
        for name, row in zip(names, cond):
            handle.write(name + "," + ",".join(f"{v:.4f}" for v in row) + "\n")
    contact_sheet(out, arrays)
    return report
