"""Textual scene graph of a caption: entities with attributes and (subject, relation, object) triples.

Sources: docs/retrieval.md#hire (HiRE's textual graph, an ablation) and decision 'referral trees' (the triples the
SMFEA referral tree is built from); docs/retrieval.md (rule-based scene-graph parsing over
a dependency parse, in the spirit of the Stanford / vacancy SceneGraphParser rules).

Rules over the UD `Parse` of `retrieval.parsing.base` (written by us):

* entities: nouns that are not noun modifiers (``compound``); attributes = adjectival (``amod``) and
  noun (``compound``) modifiers, predicative adjectives ("the sky is blue"), count = ``nummod``;
* verb relations: subject (``nsubj``, or the noun a participle modifies: "a man riding a horse") with
  each direct object (relation = verb lemma) and each prepositional object (relation = "verb prep";
  just "prep" for a copula: "a cube is behind a sphere");
* noun relations: a noun's prepositional modifier ("a woman in a dress" → woman, in, dress); the UD
  copula form ("cube is behind sphere" with ``cop``) gives the same triple;
* spatial phrases: "left of", "to the right of", "in front of", "on top of", "next to" become one
  relation whose object is the noun after the inner preposition (also when the parser glued the
  subject onto the spatial noun as a ``compound``: "a cube right of a sphere");
* coordinated subjects / objects ("a dog and a cat") each get the relation.
"""

from __future__ import annotations

from dataclasses import dataclass

from retrieval.parsing.base import ROOT_HEAD, Parse

NOMINAL = {"NOUN", "PROPN"}
NEVER_NOMINAL = {"AUX", "ADP", "CCONJ", "SCONJ", "PUNCT", "DET", "PRON", "NUM", "PART"}
SPATIAL_WORDS = {
    "left", "right", "front", "top", "next", "close", "near", "ahead", "middle", "center", "centre",
    "bottom", "side", "behind", "beside",
}
BARE_SPATIAL = {"left", "right"}  # "to the left of" / "on the left of" → "left of"
INNER_CASES = {"of", "to", "from"}
COPULAS = {"be"}
RELATIVE_PRONOUNS = {"that", "which", "who", "whom"}
CLAUSAL = {"conj", "xcomp", "advcl", "ccomp", "obl", "advmod", "dep", "parataxis"}
MODIFYING = {"acl", "acl:relcl", "amod", "appos", "nmod", "advmod", "obl:npmod", "dep"}
MAX_CLIMB = 6


@dataclass(frozen=True)
class Entity:
    """A thing mentioned in the caption: head lemma, surface phrase, attributes, count, head token."""

    name: str
    phrase: str
    attributes: tuple[str, ...]
    count: str | None
    token: int


@dataclass(frozen=True)
class Relation:
    """``subject --predicate--> object`` between entity indices; `token` anchors it in the sentence."""

    subject: int
    predicate: str
    object: int
    token: int
    verb: str | None
    preposition: str | None


@dataclass(frozen=True)
class SceneGraph:
    """Entities and relations of one caption."""

    entities: tuple[Entity, ...]
    relations: tuple[Relation, ...]

    def triples(self) -> list[tuple[str, str, str]]:
        """(subject phrase, predicate, object phrase) for every relation."""
        return [(self.entities[r.subject].phrase, r.predicate, self.entities[r.object].phrase) for r in self.relations]

    def to_json(self) -> dict:
        """JSON form: entities as dicts, relations as ``[subject, predicate, object, token, verb, prep]``."""
        return {
            "entities": [
                {"name": e.name, "phrase": e.phrase, "attributes": list(e.attributes), "count": e.count, "token": e.token}
                for e in self.entities
            ],
            "relations": [[r.subject, r.predicate, r.object, r.token, r.verb, r.preposition] for r in self.relations],
        }

    @classmethod
    def from_json(cls, record: dict) -> "SceneGraph":
        """Inverse of `to_json`."""
        entities = tuple(
            Entity(e["name"], e["phrase"], tuple(e["attributes"]), e["count"], int(e["token"])) for e in record["entities"]
        )
        relations = tuple(Relation(int(s), p, int(o), int(t), v, c) for s, p, o, t, v, c in record["relations"])
        return cls(entities, relations)


class _Extractor:
    """One pass of the rules above over a parse."""

    def __init__(self, parse: Parse) -> None:
        self.parse = parse
        self.tokens = parse.tokens
        self.lower = [t.text.lower() for t in self.tokens]
        self.lemma = [t.lemma.lower() for t in self.tokens]
        self.nominal = [self._is_nominal(i) for i in range(len(self.tokens))]
        self.spatial = self._spatial_words()
        self.entity_of: dict[int, int] = {}
        self.entities: list[Entity] = []
        self.relations: dict[tuple[int, str, int], Relation] = {}

    def _is_nominal(self, index: int) -> bool:
        """A noun, or a word mistagged by the parser but carrying a determiner ("a sphere" as ADV, "a cone" as VERB)."""
        upos = self.tokens[index].upos
        return upos in NOMINAL or (upos not in NEVER_NOMINAL and bool(self.parse.children(index, "det")))

    def _case(self, index: int) -> str | None:
        cases = self.parse.children(index, "case")
        return " ".join(self.lower[c] for c in cases) if cases else None

    def _spatial_words(self) -> dict[int, tuple[str, int]]:
        """Spatial word index → (relation phrase, index of the object noun)."""
        found = {}
        for i, word in enumerate(self.lower):
            if word not in SPATIAL_WORDS:
                continue
            for obj in self.parse.children(i, "nmod", "obl"):
                inner = self._case(obj)
                if inner in INNER_CASES and self.nominal[obj]:
                    sides = [self.lower[c] for c in self.parse.children(i, "amod") if self.lower[c] in BARE_SPATIAL]
                    word = sides[0] if word == "side" and sides else word  # "on the left side of" → "left of"
                    outer = self._case(i) if self.nominal[i] and word not in BARE_SPATIAL else None
                    found[i] = (" ".join(p for p in (outer, word, inner) if p), obj)
                    break
        return found

    def _attributes(self, index: int) -> tuple[list[int], str | None]:
        modifiers: list[int] = []
        stack = self.parse.children(index, "amod", "compound")
        while stack:  # modifiers of noun modifiers too: "red" in "a red metal cube" hangs off "metal"
            child = stack.pop()
            modifiers.append(child)
            stack.extend(c for c in self.parse.children(child, "conj") if self.tokens[c].upos in ("ADJ", "NOUN"))
            if self.tokens[child].deprel == "compound":
                stack.extend(self.parse.children(child, "amod", "compound"))
        counts = self.parse.children(index, "nummod")
        return sorted(modifiers), (self.lower[counts[0]] if counts else None)

    def _predicative(self, index: int) -> list[str]:
        token = self.tokens[index]
        if token.deprel not in ("nsubj", "nsubj:pass") or token.head == ROOT_HEAD:
            return []
        head = token.head
        if self.tokens[head].upos == "ADJ" and self.parse.children(head, "cop"):
            predicates = [head]
        elif self.lemma[head] in COPULAS:
            predicates = [c for c in self.parse.children(head, "acomp") if self.tokens[c].upos == "ADJ"]
        else:
            return []
        predicates += [c for p in list(predicates) for c in self.parse.children(p, "conj") if self.tokens[c].upos == "ADJ"]
        return [self.lemma[p] for p in sorted(predicates)]

    def collect_entities(self) -> None:
        for i, token in enumerate(self.tokens):
            modifier = token.deprel == "compound" and token.head not in self.spatial
            if not self.nominal[i] or modifier or i in self.spatial:
                continue
            modifiers, count = self._attributes(i)
            words = sorted(set(modifiers) | set(self.parse.children(i, "nummod")) | {i})
            self.entity_of[i] = len(self.entities)
            self.entities.append(
                Entity(
                    name=self.lemma[i],
                    phrase=" ".join(self.lower[w] for w in words),
                    attributes=tuple(self.lemma[m] for m in modifiers) + tuple(self._predicative(i)),
                    count=count,
                    token=i,
                )
            )

    def _with_conjuncts(self, index: int) -> list[int]:
        """Entity indices of a noun and the nouns coordinated with it."""
        found, stack = [], [index]
        while stack:
            current = stack.pop()
            if current in self.entity_of:
                found.append(self.entity_of[current])
            stack.extend(c for c in self.parse.children(current, "conj") if self.nominal[c])
        return sorted(set(found))

    def subject_of(self, index: int) -> int | None:
        """Token of the subject of predicate `index`: its nsubj, the noun it modifies, or a governing clause's."""
        current = index
        for _ in range(MAX_CLIMB):
            subjects = self.parse.children(current, "nsubj", "nsubj:pass")
            if not subjects and self.parse.children(current, "expl"):  # ClearNLP "there is X ...": X is attr
                subjects = [c for c in self.parse.children(current, "attr") if self.nominal[c]]
            token = self.tokens[current]
            if subjects:
                subject = subjects[0]
                relative = self.lower[subject] in RELATIVE_PRONOUNS and token.deprel == "acl:relcl"
                return token.head if relative else subject
            if token.head == ROOT_HEAD:
                return None
            if token.deprel in MODIFYING and self.nominal[token.head]:
                return token.head
            if token.deprel not in CLAUSAL:
                return None
            current = token.head
        return None

    def _add(
        self, subjects: list[int], predicate: str, objects: list[int], token: int, verb: str | None, prep: str | None
    ) -> None:
        for s in subjects:
            for o in objects:
                if s != o:
                    self.relations.setdefault((s, predicate, o), Relation(s, predicate, o, token, verb, prep))

    def _verb(self, index: int) -> str | None:
        """Lemma of a non-copula verb at `index`, else None."""
        token = self.tokens[index]
        is_verb = token.upos == "VERB" or (token.upos == "AUX" and token.deprel not in ("aux", "aux:pass", "cop"))
        return self.lemma[index] if is_verb and self.lemma[index] not in COPULAS else None

    def collect_relations(self) -> None:
        for i, token in enumerate(self.tokens):
            verbal = token.upos in ("VERB", "AUX") and token.deprel not in ("aux", "aux:pass", "cop")
            if verbal and not self.nominal[i] and i not in self.spatial:
                self._verb_relations(i)
            if i in self.entity_of:
                self._noun_relations(i)
        for word, (phrase, obj) in self.spatial.items():
            self._spatial_relation(word, phrase, obj)

    def _verb_relations(self, index: int) -> None:
        subject = self.subject_of(index)
        if subject is None:
            return
        subjects = self._with_conjuncts(subject)
        verb = self._verb(index)
        for obj in self.parse.children(index, "obj"):
            if verb is not None:
                self._add(subjects, verb, self._with_conjuncts(obj), index, verb, None)
        for obj in self.parse.children(index, "obl", "obl:agent"):
            prep = self._case(obj)
            if prep is None or obj in self.spatial:
                continue
            predicate = prep if verb is None else f"{verb} {prep}"
            self._add(subjects, predicate, self._with_conjuncts(obj), index, verb, prep)

    def _noun_relations(self, index: int) -> None:
        subjects = self._with_conjuncts(index)
        for obj in self.parse.children(index, "nmod", "obl"):  # obl: on a noun the parser tagged as a verb
            prep = self._case(obj)
            if prep is not None and obj not in self.spatial:
                self._add(subjects, prep, self._with_conjuncts(obj), self.parse.children(obj, "case")[0], None, prep)
        prep = self._case(index)
        if prep is not None and self.parse.children(index, "cop"):
            for subject in self.parse.children(index, "nsubj"):
                self._add(self._with_conjuncts(subject), prep, subjects, self.parse.children(index, "case")[0], None, prep)

    def _spatial_relation(self, word: int, phrase: str, obj: int) -> None:
        token = self.tokens[word]
        compounds = [c for c in self.parse.children(word, "compound") if self.nominal[c]]
        if compounds:  # parser read "a cube right of ..." as the noun phrase "cube right"
            subject, verb = compounds[-1], None
        elif self.parse.children(word, "nsubj", "nsubj:pass"):
            subject, verb = self.subject_of(word), None
        elif token.head != ROOT_HEAD and self.nominal[token.head]:
            subject, verb = token.head, None
        elif token.head != ROOT_HEAD:
            subject, verb = self.subject_of(token.head), self._verb(token.head)
        else:
            return
        if subject is None:
            return
        predicate = phrase if verb is None else f"{verb} {phrase}"
        self._add(self._with_conjuncts(subject), predicate, self._with_conjuncts(obj), word, verb, phrase)


def build_scene_graph(parse: Parse) -> SceneGraph:
    """Entities, attributes and relation triples of one caption (rules in the module docstring)."""
    extractor = _Extractor(parse)
    extractor.collect_entities()
    extractor.collect_relations()
    relations = sorted(extractor.relations.values(), key=lambda r: (r.token, r.subject, r.object))
    return SceneGraph(tuple(extractor.entities), tuple(relations))
