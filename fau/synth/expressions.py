"""SynFACS expressions: latent expressions mixed per frame into smooth AU-intensity sequences.

AUs co-occur because they are produced by a few latent expressions (EMFACS-style prototypes,
Ekman & Friesen; the issue's examples: happiness 6+12(+25), surprise 1+2+26, sadness 1+4+15+17),
plus talking and rarer single-AU "twitches" so that every AU also appears outside its usual
company. Each sequence imitates one BP4D task (T1–T8 are emotion-elicitation tasks, Zhang et
al. 2014): its dominant expression is the task's target emotion, the others appear less often.
Within a sequence each expression episode has a smooth onset–apex–offset envelope, so AU
intensities vary smoothly from frame to frame.
"""

from __future__ import annotations

import numpy as np

from fau.aus import SYNFACS_AUS

# Expression -> {AU: (probability the AU takes part in an episode, low, high peak intensity)}.
EXPRESSIONS: dict[str, dict[int, tuple[float, float, float]]] = {
    "happiness": {12: (1.0, 2.5, 5.0), 6: (0.8, 2.0, 4.5), 25: (0.5, 2.0, 4.0),
                  26: (0.2, 1.5, 3.0), 10: (0.3, 1.5, 3.0), 7: (0.35, 1.5, 3.5),
                  14: (0.35, 1.5, 3.5)},
    "sadness": {1: (0.9, 2.0, 4.0), 4: (0.8, 2.0, 4.0), 15: (0.9, 2.0, 4.5),
                17: (0.6, 2.0, 4.0), 24: (0.15, 1.5, 3.0)},
    "surprise": {1: (1.0, 2.5, 5.0), 2: (1.0, 2.5, 5.0), 25: (0.8, 2.0, 4.0),
                 26: (0.7, 2.0, 4.5)},
    "embarrassment": {12: (0.9, 2.0, 4.0), 14: (0.6, 2.0, 4.0), 24: (0.5, 2.0, 4.0),
                      17: (0.4, 1.5, 3.5), 6: (0.35, 1.5, 3.5), 23: (0.25, 1.5, 3.0)},
    "fear": {1: (0.9, 2.0, 4.5), 2: (0.75, 2.0, 4.0), 4: (0.8, 2.0, 4.0), 7: (0.6, 1.5, 3.5),
             25: (0.7, 2.0, 4.0), 26: (0.35, 1.5, 3.5), 15: (0.2, 1.5, 3.0)},
    "pain": {4: (0.9, 2.0, 5.0), 6: (0.8, 2.0, 4.5), 7: (0.9, 2.0, 5.0), 9: (0.5, 2.0, 4.0),
             10: (0.7, 2.0, 4.0), 25: (0.4, 1.5, 3.5), 12: (0.3, 1.0, 3.0), 24: (0.2, 1.5, 3.0)},
    "anger": {4: (1.0, 2.5, 5.0), 7: (0.8, 2.0, 4.0), 23: (0.7, 2.0, 4.0), 24: (0.6, 2.0, 4.0),
              17: (0.4, 1.5, 3.5), 10: (0.2, 1.5, 3.0)},
    "disgust": {9: (0.9, 2.0, 5.0), 10: (0.8, 2.0, 4.5), 15: (0.4, 1.5, 3.5), 17: (0.5, 1.5, 3.5),
                4: (0.5, 1.0, 3.0), 25: (0.3, 1.5, 3.0), 7: (0.3, 1.5, 3.0)},
    "contempt": {12: (1.0, 1.5, 3.0), 14: (1.0, 2.0, 4.0)},
    "talking": {25: (0.9, 1.5, 3.5), 26: (0.5, 1.0, 3.0), 10: (0.15, 1.0, 2.5),
                17: (0.2, 1.0, 2.5), 23: (0.15, 1.0, 2.5)},
}

# BP4D tasks (Zhang et al. 2014): T1 interview/joke, T2 sad film, T3 startle, T4 silly song,
# T5 threat, T6 cold pressor, T7 insult, T8 smell -> target expression.
TASKS: dict[str, str] = {"T1": "happiness", "T2": "sadness", "T3": "surprise",
                         "T4": "embarrassment", "T5": "fear", "T6": "pain", "T7": "anger",
                         "T8": "disgust"}

DOMINANT_SHARE = 0.45
TALKING_SHARE = 0.15
SMILING_SHARE = 0.12  # extra happiness in every task: BP4D participants smile throughout
TWITCH_RATE = 0.012  # single-AU episodes per frame (all AUs together)
EPISODE_RATE = 1 / 13  # expression episodes per frame


def task_profile(task: str) -> dict[str, float]:
    """Probability of each expression for an episode in BP4D task `task` (module docstring)."""
    others = [e for e in EXPRESSIONS if e not in (TASKS[task], "talking")]
    rest = (1.0 - DOMINANT_SHARE - TALKING_SHARE - SMILING_SHARE) / len(others)
    profile = {e: rest for e in others}
    profile[TASKS[task]] = DOMINANT_SHARE
    profile["talking"] = TALKING_SHARE
    profile["happiness"] += SMILING_SHARE
    return profile


def envelope(n_frames: int, onset: float, apex: float, offset: float, start: float) -> np.ndarray:
    """Episode envelope in [0, 1]: raised-cosine onset, flat apex, raised-cosine offset, the
    onset beginning at frame `start` (may be negative: an episode already under way)."""
    t = np.arange(n_frames) - start
    out = np.zeros(n_frames)
    rise = (t >= 0) & (t < onset)
    out[rise] = 0.5 - 0.5 * np.cos(np.pi * t[rise] / onset)
    top = (t >= onset) & (t < onset + apex)
    out[top] = 1.0
    fall = (t >= onset + apex) & (t < onset + apex + offset)
    out[fall] = 0.5 + 0.5 * np.cos(np.pi * (t[fall] - onset - apex) / offset)
    return out


def _episode_times(rng: np.random.Generator, n_frames: int) -> tuple[float, float, float, float]:
    """Onset, apex and offset durations and the start frame of one episode."""
    onset, apex, offset = rng.uniform(5, 10), rng.uniform(4, 18), rng.uniform(5, 12)
    start = rng.uniform(-onset - apex / 2, n_frames - onset / 2)
    return onset, apex, offset, start


def sequence_intensities(rng: np.random.Generator, n_frames: int, profile: dict[str, float],
                         expressivity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Continuous AU intensities (n_frames, 15) in [0, 5] and expression activations (n_frames, E).

    Episodes of latent expressions (count ~ Poisson(n_frames * EPISODE_RATE), at least one) are
    drawn from `profile`; each episode recruits the expression's AUs with their probabilities and
    a random peak; intensities of overlapping episodes combine by maximum. Single-AU twitches are
    added, then per-subject `expressivity` (15,) scales every AU. Smooth by construction.
    """
    names = list(EXPRESSIONS)
    probs = np.array([profile.get(e, 0.0) for e in names])
    probs = probs / probs.sum()
    au_index = {au: i for i, au in enumerate(SYNFACS_AUS)}
    intens = np.zeros((n_frames, len(SYNFACS_AUS)))
    activ = np.zeros((n_frames, len(names)))
    n_episodes = max(1, rng.poisson(n_frames * EPISODE_RATE))
    for _ in range(n_episodes):
        e = rng.choice(len(names), p=probs)
        env = envelope(n_frames, *_episode_times(rng, n_frames))
        strength = rng.uniform(0.6, 1.0)
        activ[:, e] = np.maximum(activ[:, e], strength * env)
        for au, (p, low, high) in EXPRESSIONS[names[e]].items():
            if rng.random() < p:
                peak = strength * rng.uniform(low, high)
                k = au_index[au]
                intens[:, k] = np.maximum(intens[:, k], peak * env)
    for _ in range(rng.poisson(n_frames * TWITCH_RATE)):
        k = rng.integers(len(SYNFACS_AUS))
        env = envelope(n_frames, *_episode_times(rng, n_frames))
        intens[:, k] = np.maximum(intens[:, k], rng.uniform(2.0, 4.0) * env)
    intens = np.clip(intens * expressivity[None, :], 0.0, 5.0)
    return _couple(intens), activ


def _couple(intens: np.ndarray) -> np.ndarray:
    """FACS coupling rule used by SynFACS: a visible jaw drop parts the lips (AU26 ⇒ AU25 ≥ AU26)."""
    k25, k26 = SYNFACS_AUS.index(25), SYNFACS_AUS.index(26)
    intens[:, k25] = np.maximum(intens[:, k25], intens[:, k26])
    return intens


def sample_expressivity(rng: np.random.Generator) -> np.ndarray:
    """Per-subject AU gains (15,): people differ in how strongly they recruit each AU."""
    return rng.lognormal(mean=0.0, sigma=0.15, size=len(SYNFACS_AUS)).clip(0.7, 1.3)


def to_labels(intensities: np.ndarray) -> np.ndarray:
    """Integer FACS intensities 0–5 (DISFA-style labels): round half up of the continuous value."""
    return np.floor(np.clip(intensities, 0.0, 5.0) + 0.5).astype(np.int8)
