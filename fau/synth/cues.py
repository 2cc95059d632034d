"""Which SynFACS AUs are seen mostly in the landmarks and which mostly in the skin.

`CUE_KIND` maps every SynFACS AU to ``"geometric"`` or ``"appearance"``. The split follows the
appearance changes the FACS manual lists for each AU (Ekman, Friesen & Hager, *Facial Action
Coding System*, 2002; the same descriptions drive the VL-FAU language targets,
``fau/language/templates/facs_v1.yaml``):

* geometric: the defining change is a displacement of a contour that a 49-point tracker follows
  (brows, eyelids, lip corners, lip aperture, jaw), large enough to show in the landmarks at
  moderate intensity. SynFACS keeps their full landmark motion (actions.py); their skin changes
  (forehead lines of AU1/AU2, glabellar lines of AU4) are still drawn.
* appearance: the defining changes are in skin between the tracked contours, or in the texture of
  the lips: wrinkles, furrows, bulges and shading. FACS also lists contour motion for them, but it
  is small next to the skin changes, so SynFACS caps their landmark motion at
  `APPEARANCE_MAX_SHIFT` and draws them mainly as texture (render.py).

Decisions where the manual leaves room (ours): AU4 is geometric because the brows' lowering and
drawing together comes first in its description and is large at C-E; AU10 is appearance although
the manual names the raised upper lip first, because below intensity D the lip moves by a few
percent of the inter-ocular distance while the deepened nasolabial furrow and the raised
infraorbital triangle carry it; AU17 is appearance because its chin-boss changes lie below the
49 tracked points (the jaw line is not among them).
"""

from __future__ import annotations

GEOMETRIC = "geometric"
APPEARANCE = "appearance"

#: AU -> cue kind; reasons (FACS appearance changes, abridged) in `CUE_REASON`.
CUE_KIND: dict[int, str] = {
    1: GEOMETRIC, 2: GEOMETRIC, 4: GEOMETRIC, 6: APPEARANCE, 7: GEOMETRIC, 9: APPEARANCE,
    10: APPEARANCE, 12: GEOMETRIC, 14: APPEARANCE, 15: GEOMETRIC, 17: APPEARANCE,
    23: APPEARANCE, 24: APPEARANCE, 25: GEOMETRIC, 26: GEOMETRIC,
}

CUE_REASON: dict[int, str] = {
    1: "inner brows raised and made oblique (tracked brow points); central forehead lines",
    2: "lateral brows raised and arched (tracked brow points); lateral forehead lines",
    4: "brows lowered and drawn together (tracked); vertical glabellar furrows and bulge",
    6: "cheeks lifted, infraorbital furrow, crow's feet; lower lid pushed up only slightly",
    7: "lower lid raised and straightened, eye aperture narrowed (tracked lid points)",
    9: "wrinkles along the nose bridge and sides, nasal wings and infraorbital skin raised",
    10: "nasolabial furrow deepened, infraorbital triangle raised; upper lip lifted a little",
    12: "lip corners pulled up and out obliquely (tracked corners); nasolabial furrow deepened",
    14: "dimples and bulges lateral to the tightened lip corners; corners barely move",
    15: "lip corners pulled down, lip line angled down (tracked corners)",
    17: "chin boss wrinkled and pushed up, mentolabial furrow; lower lip raised a little",
    23: "red of the lips narrowed and tightened, vertical lip wrinkles",
    24: "lips pressed together, bulges above and below the lips, paler pressed lips",
    25: "lips parted, teeth or mouth interior visible (tracked inner lips)",
    26: "mandible lowered: chin and lower lip down (tracked lips; jaw line)",
}

#: Largest landmark shift (face units: inter-ocular distance 1) an appearance AU may cause at
#: full intensity: about the tracker noise of the written landmarks (writer.TRACKER_NME), so the
#: landmarks show these AUs only weakly, as in real tracked data.
APPEARANCE_MAX_SHIFT = 0.045


def aus_of_kind(kind: str, aus: tuple[int, ...] | list[int]) -> list[int]:
    """The AUs of `aus` whose cue kind is `kind` (``"geometric"`` or ``"appearance"``)."""
    if kind not in (GEOMETRIC, APPEARANCE):
        raise ValueError(f"cue kind must be {GEOMETRIC!r} or {APPEARANCE!r}, got {kind!r}")
    return [au for au in aus if CUE_KIND.get(au) == kind]
