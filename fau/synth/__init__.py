"""SynFACS: a procedural, FACS-labelled face dataset written in BP4D's (or DISFA's) raw layout.

Entry point: `fau.synth.generate.generate` (also `fau synth`). Modules: shape (68-pt parametric
face and identities), actions (per-AU landmark displacements), expressions (latent expressions ->
smooth AU intensities), render (OpenCV drawing with appearance cues, pose, lighting, occlusion),
writer (raw layouts + ground truth), report (prevalence, co-occurrence, contact sheet).

This file only holds the default size, so `fau --help` can show it without importing OpenCV.
The default (15 subjects x 4 BP4D tasks x 48 frames = 2,880 frames) renders in about 40 s of CPU
time, i.e. well under a minute on 2 cores with 2 workers.
"""

DEFAULT_SUBJECTS = 15
DEFAULT_SEQUENCES = 4
DEFAULT_FRAMES = 48
