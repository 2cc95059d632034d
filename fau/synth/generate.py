"""SynFACS generation: subjects -> sequences -> rendered frames, labels, landmarks and a report.

Every subject gets an identity (shape.py), an appearance (render.py) and AU expressivity
(expressions.py) from its own seeded stream; every sequence ("clip") renders from a stream
seeded by (seed, subject, clip), so the output is identical whatever the worker count.
BP4D layout: one clip per task, ``n_sequences`` of the 8 BP4D tasks chosen per subject.
DISFA layout: one continuous ``left`` video per subject, ``n_sequences * n_frames`` long, whose
episodes are drawn from the mixture of the subject's chosen tasks.
Frames are drawn from the continuous AU intensities; labels are their rounding to FACS levels
0–5, as a human coder discretises what they see. The landmark files get the true landmarks plus
tracker-like error (tracking.py), as real datasets ship a tracker's output; the ground truth
keeps both.
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fau.aus import SYNFACS_AUS
from fau.synth import DEFAULT_FRAMES, DEFAULT_SEQUENCES, DEFAULT_SUBJECTS
from fau.synth.actions import apply_actions
from fau.synth.expressions import (EXPRESSIONS, TASKS, sample_expressivity,
                                   sequence_intensities, task_profile, to_labels)
from fau.synth.render import IMAGE_HEIGHT, IMAGE_WIDTH, Look, render, sample_look, sequence_views
from fau.synth.report import write_report
from fau.synth.shape import Identity, neutral_landmarks, sample_identity
from fau.synth.tracking import track
from fau.synth.writer import (LAYOUTS, OCCURRENCE_MIN_INTENSITY, TRUTH_JSON, frame_path,
                              occluded_aus, occurrence_codes, write_bp4d_sequence,
                              write_disfa_subject, write_folds, write_frame, write_gender_csv,
                              write_truth)
from shared.errors import UserError

PARTS = ("part1", "part2", "part3")
TRACKER_STREAM = 1  # 4th seed word of a clip's tracker-error stream


@dataclass(frozen=True)
class Subject:
    """One synthetic participant."""

    name: str
    gender: str
    part: str
    tasks: tuple[str, ...]
    identity: Identity
    look: Look
    expressivity: tuple[float, ...]


@dataclass(frozen=True)
class Clip:
    """One sequence to render: a BP4D task, or a DISFA subject's whole video."""

    subject: Subject
    sequence: str
    tasks: tuple[str, ...]
    n_frames: int
    seed: tuple[int, int, int]


def subject_names(n_subjects: int, layout: str) -> list[tuple[str, str]]:
    """(name, gender) per subject: BP4D-style ``F001, M001, F002, ...`` (gender in the id) or
    DISFA-style ``SN001, SN002, ...`` (alternating genders, listed in gender.csv)."""
    out = []
    for i in range(n_subjects):
        gender = "female" if i % 2 == 0 else "male"
        name = f"{gender[0].upper()}{i // 2 + 1:03d}" if layout == "bp4d" else f"SN{i + 1:03d}"
        out.append((name, gender))
    return out


def make_subjects(seed: int, n_subjects: int, n_sequences: int, layout: str) -> list[Subject]:
    """Sample every subject from its own stream ``default_rng([seed, index, 0])``; subjects are
    dealt round-robin into part1..part3 (genders alternate, so parts stay balanced)."""
    subjects = []
    for i, (name, gender) in enumerate(subject_names(n_subjects, layout)):
        rng = np.random.default_rng([seed, i, 0])
        female = gender == "female"
        ident = sample_identity(rng, female)
        look = sample_look(rng, female)
        expressivity = tuple(float(x) for x in sample_expressivity(rng))
        tasks = tuple(sorted(rng.choice(list(TASKS), size=n_sequences, replace=False),
                             key=lambda t: int(t[1:])))
        subjects.append(Subject(name, gender, PARTS[i % 3], tasks, ident, look, expressivity))
    return subjects


def make_clips(subjects: list[Subject], seed: int, n_frames: int, layout: str) -> list[Clip]:
    """The sequences to render, in output order (module docstring)."""
    clips = []
    for i, subject in enumerate(subjects):
        if layout == "bp4d":
            for j, task in enumerate(subject.tasks):
                clips.append(Clip(subject, task, (task,), n_frames, (seed, i, j + 1)))
        else:
            clips.append(Clip(subject, "left", subject.tasks, n_frames * len(subject.tasks),
                              (seed, i, 1)))
    return clips


def _mixed_profile(tasks: tuple[str, ...]) -> dict[str, float]:
    profiles = [task_profile(t) for t in tasks]
    return {e: float(np.mean([p[e] for p in profiles])) for e in EXPRESSIONS}


def render_clip(clip: Clip, out: Path, layout: str) -> dict[str, np.ndarray]:
    """Render and write the frames of `clip`; return its per-frame ground-truth arrays."""
    rng = np.random.default_rng(list(clip.seed))
    subject = clip.subject
    intens, activ = sequence_intensities(rng, clip.n_frames, _mixed_profile(clip.tasks),
                                         np.asarray(subject.expressivity))
    views = sequence_views(rng, clip.n_frames, subject.identity)
    neutral = neutral_landmarks(subject.identity)
    landmarks = np.zeros((clip.n_frames, 68, 2), np.float32)
    unknown = np.zeros((clip.n_frames, len(SYNFACS_AUS)), bool)
    for t in range(clip.n_frames):
        lm3 = apply_actions(neutral, intens[t])
        image, landmarks[t], mask = render(lm3, intens[t], subject.identity, subject.look,
                                           views[t], rng)
        unknown[t] = occluded_aus(landmarks[t], mask)
        write_frame(frame_path(out, layout, subject.name, clip.sequence, t + 1), image)
    labels = to_labels(intens)
    # Tracker error from its own stream, so the rendered frames do not depend on it.
    tracked = track(landmarks, np.random.default_rng([*clip.seed, TRACKER_STREAM]))
    return {
        "landmarks": landmarks,
        "tracked_landmarks": tracked,
        "intensity": intens.astype(np.float32),
        "labels": labels,
        "occurrence": np.where(unknown, -1, labels >= OCCURRENCE_MIN_INTENSITY).astype(np.int8),
        "unknown": unknown,
        "expressions": activ.astype(np.float32),
        "pose": np.array([[v.yaw, v.pitch, v.roll] for v in views], np.float32),
        "occluded": np.array([v.occluder is not None for v in views]),
    }


def _render_job(job: tuple[Clip, Path, str]) -> dict[str, np.ndarray]:
    return render_clip(*job)


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)


def _check_args(out: Path, n_subjects: int, n_sequences: int, n_frames: int, layout: str,
                seed: int, workers: int, overwrite: bool) -> None:
    """One-line `UserError`s for every bad argument (and a non-empty or foreign --out)."""
    if layout not in LAYOUTS:
        raise UserError(f"--layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if n_subjects < 3:
        raise UserError(f"--subjects must be >= 3 (3 subject-exclusive parts), got {n_subjects}")
    if not 1 <= n_sequences <= len(TASKS):
        raise UserError(f"--sequences must be 1..{len(TASKS)} (the BP4D tasks), got {n_sequences}")
    if not 1 <= n_frames <= 9999:
        raise UserError(f"--frames must be 1..9999 per sequence, got {n_frames}")
    if layout == "disfa" and n_frames * n_sequences > 9999:
        raise UserError("--frames x --sequences must be <= 9999 for the DISFA layout")
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"--out {out}: folder is not empty (use --overwrite to replace it)")
        if not (out / TRUTH_JSON).is_file():
            raise UserError(f"--out {out}: not a SynFACS folder (no {TRUTH_JSON}); "
                            "refusing to delete it for --overwrite")


def generate(out: str | Path, n_subjects: int = DEFAULT_SUBJECTS,
             n_sequences: int = DEFAULT_SEQUENCES, n_frames: int = DEFAULT_FRAMES,
             seed: int = 0, layout: str = "bp4d", workers: int = 1,
             overwrite: bool = False, progress: bool = True) -> dict:
    """Generate a SynFACS dataset under `out` in the raw `layout` (writer.py docstring).

    Writes frames, labels, landmarks, the 3-part split, the ground truth and the report
    (report.py); returns a summary (frame count, seconds, prevalence, paths).
    """
    out = Path(out)
    _check_args(out, n_subjects, n_sequences, n_frames, layout, seed, workers, overwrite)
    if out.is_dir() and overwrite:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    subjects = make_subjects(seed, n_subjects, n_sequences, layout)
    clips = make_clips(subjects, seed, n_frames, layout)
    jobs = [(clip, out, layout) for clip in clips]
    bar = tqdm(total=sum(c.n_frames for c in clips), unit="frame", desc="synfacs",
               disable=not progress)
    results = []
    if workers == 1:
        for job in jobs:
            results.append(_render_job(job))
            bar.update(job[0].n_frames)
    else:
        # spawn, not fork: a forked child inherits OpenCV's thread pool without its threads
        # and can deadlock in the first cv2 call.
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_init_worker) as pool:
            for job, result in zip(jobs, pool.imap(_render_job, jobs)):
                results.append(result)
                bar.update(job[0].n_frames)
    bar.close()
    arrays = _collect(clips, results, out, layout)
    _write_labels(out, layout, clips, results, subjects)
    parts = {p: [s.name for s in subjects if s.part == p] for p in PARTS}
    write_folds(out, layout, parts)
    meta = {
        "generator": "SynFACS", "seed": seed, "layout": layout, "n_subjects": n_subjects,
        "n_sequences": n_sequences, "n_frames_per_sequence": n_frames,
        "n_frames_total": int(len(arrays["frame"])), "image_size": [IMAGE_WIDTH, IMAGE_HEIGHT],
        "aus": list(SYNFACS_AUS), "expressions": list(EXPRESSIONS),
        "occurrence_min_intensity": OCCURRENCE_MIN_INTENSITY, "parts": parts,
        "subjects": [{"name": s.name, "gender": s.gender, "part": s.part, "tasks": list(s.tasks),
                      "identity": s.identity.to_dict(), "look": asdict(s.look),
                      "expressivity": dict(zip(map(str, SYNFACS_AUS), s.expressivity))}
                     for s in subjects],
    }
    write_truth(out, arrays, meta)
    report = write_report(out, arrays)
    seconds = time.perf_counter() - start
    return {"out": str(out), "layout": layout, "frames": int(len(arrays["frame"])),
            "subjects": n_subjects, "seconds": round(seconds, 2), "workers": workers,
            "prevalence": report["prevalence"], "top_pairs": report["top_pairs"][:5],
            "unknown_labels": int(arrays["unknown"].sum())}


def _collect(clips: list[Clip], results: list[dict], out: Path, layout: str) -> dict:
    """Concatenate per-clip arrays and add the frame index columns."""
    arrays = {k: np.concatenate([r[k] for r in results]) for k in results[0]}
    subject, sequence, frame, path = [], [], [], []
    for clip in clips:
        for t in range(1, clip.n_frames + 1):
            subject.append(clip.subject.name)
            sequence.append(clip.sequence)
            frame.append(t)
            path.append(frame_path(out, layout, clip.subject.name, clip.sequence, t)
                        .relative_to(out).as_posix())
    arrays.update(subject=np.array(subject), sequence=np.array(sequence),
                  frame=np.array(frame, np.int32), path=np.array(path),
                  aus=np.array(SYNFACS_AUS, np.int16), expression_names=np.array(list(EXPRESSIONS)))
    return arrays


def _write_labels(out: Path, layout: str, clips: list[Clip], results: list[dict],
                  subjects: list[Subject]) -> None:
    for clip, result in zip(clips, results):
        frames = list(range(1, clip.n_frames + 1))
        if layout == "bp4d":
            codes = occurrence_codes(result["labels"], result["unknown"])
            write_bp4d_sequence(out, clip.subject.name, clip.sequence, frames, codes,
                                result["tracked_landmarks"])
        else:
            write_disfa_subject(out, clip.subject.name, frames, result["labels"],
                                result["tracked_landmarks"])
    if layout == "disfa":
        write_gender_csv(out, {s.name: s.gender for s in subjects})
