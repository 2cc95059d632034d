"""Per-frame language targets for VL-FAU built from AU labels (thesis §5.4.1: local descriptions of
"both activated and inactivated AU states"; the global one "only focus[es] on the activated AU
muscles" and carries gender; docs/fau.md, decision 'description templates').

Local targets: one sentence per AU from its state — the template's ``active`` text for 1, its
``inactive`` text for 0, and no target (None) for -1 (unknown). Global target: the subject word for
the frame's gender and the ``phrase`` of every ACTIVE AU in AU order, joined as an Oxford-comma
list ("The woman raises her cheeks, pulls up her lip corners, and parts her lips."); the template's
``neutral`` sentence when every AU is known and none is active; None when none is active but some
are unknown. Templates are the versioned YAML files in ``fau/language/templates``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from fau.data.raw import GENDERS
from fau.data.yamlfile import read_yaml
from shared.errors import UserError

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
DEFAULT_TEMPLATE = TEMPLATES_DIR / "facs_v1.yaml"
AU_FIELDS: tuple[str, ...] = ("name", "muscle", "active", "inactive", "phrase")


@dataclass(frozen=True)
class AUText:
    """Template texts of one AU."""

    name: str
    muscle: str
    active: str
    inactive: str
    phrase: str


@dataclass(frozen=True)
class Template:
    """A loaded description template (see ``templates/facs_v1.yaml`` for the fields)."""

    version: str
    aus: Mapping[int, AUText]
    subject: Mapping[str, str]
    possessive: Mapping[str, str]
    active: str
    neutral: str
    path: Path


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where} must be a non-empty string")
    return " ".join(value.split())


def load_template(path: str | Path | None = None) -> Template:
    """Read and validate a template YAML (default: ``facs_v1``)."""
    path = Path(path) if path is not None else DEFAULT_TEMPLATE
    data = read_yaml(path, "language template")
    if not isinstance(data, dict) or not {"version", "global", "aus"} <= set(data):
        raise UserError(f"{path}: template needs the keys version, global and aus")
    glob = data["global"]
    if not isinstance(glob, dict):
        raise UserError(f"{path}: 'global' must be a mapping")
    words = {}
    for key in ("subject", "possessive"):
        table = glob.get(key)
        if not isinstance(table, dict) or set(table) != set(GENDERS):
            raise UserError(f"{path}: global.{key} must map exactly {', '.join(GENDERS)}")
        words[key] = {g: _text(table[g], f"{path}: global.{key}.{g}") for g in GENDERS}
    active = _text(glob.get("active"), f"{path}: global.active")
    if "{subject}" not in active or "{phrases}" not in active:
        raise UserError(f"{path}: global.active must contain {{subject}} and {{phrases}}")
    aus = {}
    if not isinstance(data["aus"], dict) or not data["aus"]:
        raise UserError(f"{path}: 'aus' must map AU numbers to texts")
    for au, entry in data["aus"].items():
        where = f"{path}: aus.{au}"
        if not isinstance(au, int) or not isinstance(entry, dict):
            raise UserError(f"{where}: keys must be AU numbers mapping to {', '.join(AU_FIELDS)}")
        aus[au] = AUText(**{f: _text(entry.get(f), f"{where}.{f}") for f in AU_FIELDS})
    return Template(str(data["version"]), aus, words["subject"], words["possessive"], active,
                    _text(glob.get("neutral"), f"{path}: global.neutral"), path)


def join_phrases(phrases: Sequence[str]) -> str:
    """``a`` / ``a and b`` / ``a, b, and c`` (Oxford comma)."""
    if len(phrases) <= 2:
        return " and ".join(phrases)
    return ", ".join(phrases[:-1]) + ", and " + phrases[-1]


def check_aus(template: Template, aus: Sequence[int]) -> None:
    """Raise a one-line UserError when the template lacks one of `aus`."""
    missing = [a for a in aus if a not in template.aus]
    if missing:
        raise UserError(f"{template.path}: no texts for AU{missing[0]} "
                        f"(template covers {sorted(template.aus)})")


def local_sentences(labels: Sequence[int], aus: Sequence[int],
                    template: Template) -> dict[str, str | None]:
    """Local target per AU: active / inactive text, None for unknown (module docstring)."""
    out: dict[str, str | None] = {}
    for au, state in zip(aus, labels):
        text = template.aus[au]
        out[f"AU{au}"] = text.active if state == 1 else text.inactive if state == 0 else None
    return out


def global_sentence(labels: Sequence[int], aus: Sequence[int], gender: str,
                    template: Template) -> str | None:
    """Global target naming the gender and the active AUs (module docstring)."""
    gender = gender if gender in GENDERS else "unknown"
    subject, pos = template.subject[gender], template.possessive[gender]
    active = [template.aus[au].phrase.format(pos=pos) for au, s in zip(aus, labels) if s == 1]
    if active:
        return template.active.format(subject=subject, phrases=join_phrases(active))
    if all(s >= 0 for s in labels):
        return template.neutral.format(subject=subject)
    return None


def build_targets(labels: np.ndarray, aus: Sequence[int], genders: Sequence[str],
                  template: Template) -> list[dict]:
    """Targets of every frame: ``{"local": {"AU1": text|None, ...}, "global": text|None}``."""
    check_aus(template, aus)
    labels = np.asarray(labels)
    return [{"local": local_sentences(row.tolist(), aus, template),
             "global": global_sentence(row.tolist(), aus, gender, template)}
            for row, gender in zip(labels, genders)]
