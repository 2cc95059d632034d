"""Shared FAU test data: a small prepared SynFACS (6 subjects, one task of 12 frames each, seed 3)."""

import pytest

from fau.data.prepare import prepare
from fau.synth.generate import generate


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared BP4D-layout SynFACS with every AU, made once per test module (a module that needs
    other data defines its own ``prepared``)."""
    root = tmp_path_factory.mktemp("synfacs")
    generate(root / "raw", n_subjects=6, n_sequences=1, n_frames=12, seed=3, progress=False)
    prepare("bp4d", root / "raw", root / "prep", aus=None, progress=False)
    return root / "prep"
