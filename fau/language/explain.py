"""Text explanations of a VL-FAU prediction and the state a description expresses.

The generated text may contradict the predicted AU state (the seed shows such a failure case), so
an explanation can carry the generated text, the deterministic template text of the PREDICTED
states (`fau.language.targets`), or both, each under its own label.
"""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Any, Mapping, Sequence

from fau.language.targets import Template, global_sentence, local_sentences
from fau.language.vocab import tokenize
from shared.errors import UserError

EXPLANATION_MODES: tuple[str, ...] = ("generated", "template", "both")


def template_description(states: Sequence[int], aus: Sequence[int], template: Template,
                         gender: str = "unknown") -> dict[str, Any]:
    """``{"global": str, "local": {"AU1": str, ...}}``: the template texts of the predicted AU
    `states` (1 active, 0 inactive); `gender` picks the subject word ("unknown" → "The person")."""
    return {"global": global_sentence(states, aus, gender, template),
            "local": local_sentences(states, aus, template)}


def explanation(generated: Mapping[str, Any] | None, probabilities: Sequence[float], aus: Sequence[int],
                template: Template, mode: str = "both", gender: str = "unknown",
                threshold: float = 0.5) -> dict[str, Any]:
    """One image's labelled explanation: ``{"generated": {...}}``, ``{"template": {...}}`` or both
    (`mode`; docs/fau.md, decision 'explanation mode'), each ``{"global": str, "local": {label: str}}``."""
    if mode not in EXPLANATION_MODES:
        raise UserError(f"explanation mode {mode!r} is not one of {', '.join(EXPLANATION_MODES)}")
    out: dict[str, Any] = {}
    if mode in ("generated", "both"):
        if generated is None:
            raise UserError("explanation mode needs generated text, but the model has no language head")
        out["generated"] = dict(generated)
    if mode in ("template", "both"):
        states = [1 if p >= threshold else 0 for p in probabilities]
        out["template"] = template_description(states, aus, template, gender)
    return out


def description_state(text: str, au: int, template: Template) -> int | None:
    """The AU state a local description expresses: 1 if its tokens are closer (difflib ratio) to the
    template's active text than to its inactive text, 0 if closer to the inactive one, None on a tie."""
    tokens = tokenize(text)
    entry = template.aus[au]
    active = SequenceMatcher(None, tokens, tokenize(entry.active), autojunk=False).ratio()
    inactive = SequenceMatcher(None, tokens, tokenize(entry.inactive), autojunk=False).ratio()
    return 1 if active > inactive else 0 if inactive > active else None
