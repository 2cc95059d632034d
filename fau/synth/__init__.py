"""SynFACS: a procedural, FACS-labelled face dataset written in BP4D's (or DISFA's) raw layout.

Entry point: `fau.synth.generate.generate` (also `fau synth`). Modules: shape (68-pt parametric
face and identities, calibrated on real faces), calibration (the real-face measurement behind
it), cues (`CUE_KIND`: which AUs are mostly geometric and which mostly appearance), actions
(per-AU landmark displacements), expressions (latent expressions -> smooth AU intensities),
render (OpenCV drawing with appearance cues, pose, lighting, occlusion), tracking (tracker-like
error of the landmarks the dataset ships), writer (raw layouts + ground truth), report
(prevalence, co-occurrence, contact sheet).

This file holds the default size and re-exports `CUE_KIND`, so `fau --help` and result tables
can use them without importing OpenCV.
The default (15 subjects x 4 BP4D tasks x 48 frames = 2,880 frames) renders in well under a
minute on 2 cores with 2 workers.
"""

from fau.synth.cues import APPEARANCE, CUE_KIND, GEOMETRIC, aus_of_kind

DEFAULT_SUBJECTS = 15
DEFAULT_SEQUENCES = 4
DEFAULT_FRAMES = 48

__all__ = ["APPEARANCE", "CUE_KIND", "DEFAULT_FRAMES", "DEFAULT_SEQUENCES", "DEFAULT_SUBJECTS",
           "GEOMETRIC", "aus_of_kind"]
