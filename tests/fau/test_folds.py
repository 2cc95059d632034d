"""Fold files: the published subject lists, folds named by test part, validation subsets."""

import pytest

from fau.data.folds import (
    PARTS,
    choose_validation,
    load_fold_spec,
    shipped_fold_spec,
    split_subjects,
)
from shared.errors import UserError

# Published partitions (JAA-Net data/list/*_part{1,2,3}_path.txt,
# ME-GraphAU tool/*_image_label_process.py), typed in here independently of the data files.
PUBLISHED = {
    "bp4d": {
        "part1": "F001 M007 F018 F008 F002 M004 F010 F009 M012 M001 F016 M014 F023 M008",
        "part2": "M011 F003 M010 M002 F005 F022 M018 M017 F013 M016 F020 F011 M013 M005",
        "part3": "F007 F015 F006 F019 M006 M009 F012 M003 F004 F021 F017 M015 F014",
    },
    "disfa": {
        "part1": "SN002 SN010 SN001 SN026 SN027 SN032 SN030 SN009 SN016",
        "part2": "SN013 SN018 SN011 SN028 SN012 SN006 SN031 SN021 SN024",
        "part3": "SN003 SN029 SN023 SN025 SN008 SN005 SN007 SN017 SN004",
    },
}


@pytest.mark.parametrize("dataset", ["bp4d", "disfa"])
def test_shipped_parts_equal_the_published_lists(dataset):
    spec = shipped_fold_spec(dataset)
    assert {p: list(spec.parts[p]) for p in PARTS} == {
        p: text.split() for p, text in PUBLISHED[dataset].items()}
    assert len(spec.subjects()) == {"bp4d": 41, "disfa": 27}[dataset]


@pytest.mark.parametrize("dataset", ["bp4d", "disfa"])
def test_folds_are_named_by_test_part_and_subject_exclusive(dataset):
    spec = shipped_fold_spec(dataset)
    folds = spec.folds()
    assert [f.name for f in folds] == ["part1", "part2", "part3"]
    for fold in folds:
        assert fold.test == tuple(PUBLISHED[dataset][fold.name].split())
        assert set(fold.train) | set(fold.val) | set(fold.test) == spec.subjects()
        assert not set(fold.train) & set(fold.val)
        assert not (set(fold.train) | set(fold.val)) & set(fold.test)
        # validation is the deterministic subset the shipped file records
        others = [s for p in PARTS if p != fold.name for s in PUBLISHED[dataset][p].split()]
        assert fold.val == choose_validation(others)
        assert len(fold.val) == round(0.15 * len(others))
        assert fold.split_of(fold.test[0]) == "test" and fold.split_of("nobody") is None


def test_choose_validation_is_deterministic_and_order_free():
    subjects = [f"S{i:02d}" for i in range(20)]
    assert choose_validation(subjects) == choose_validation(subjects[::-1])
    assert choose_validation(subjects, seed=1) != choose_validation(subjects, seed=0)
    assert len(choose_validation(subjects, fraction=0.5)) == 10
    assert choose_validation(["only"]) == ()


def test_split_subjects_exclusive_and_deterministic():
    subjects = [f"p{i}" for i in range(10)]
    parts = split_subjects(subjects)
    assert parts == split_subjects(list(reversed(subjects)))
    assert sorted(s for p in parts.values() for s in p) == sorted(subjects)
    assert sorted(len(p) for p in parts.values()) == [3, 3, 4]
    with pytest.raises(UserError, match="at least 3 subjects"):
        split_subjects(["a", "b"])


def test_user_fold_file_without_validation_gets_computed_subsets(tmp_path):
    path = tmp_path / "folds.yaml"
    path.write_text("parts:\n  part1: [a, b, c]\n  part2: [d, e, f]\n  part3: [g, h]\n")
    spec = load_fold_spec(path)
    assert spec.validation["part3"] == choose_validation(list("abcdef"))
    assert spec.folds()[2].test == ("g", "h")


@pytest.mark.parametrize(
    "text, message",
    [
        ("parts: [a, b]\n", "'parts' mapping"),
        ("parts:\n  part1: [a]\n  part2: [b]\n", "exactly part1, part2, part3"),
        ("parts:\n  part1: [a]\n  part2: [a]\n  part3: [c]\n", "subject a is in both part1 and part2"),
        ("parts:\n  part1: [a]\n  part2: [b]\n  part3: [c]\nvalidation:\n  part1: [a]\n"
         "  part2: []\n  part3: []\n", "validation.part1 has a"),
        ("parts: {part1: [a], part2: [b], part3: [c\n", "not valid YAML"),
    ],
)
def test_bad_fold_files_give_one_line_errors(tmp_path, text, message):
    path = tmp_path / "folds.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as err:
        load_fold_spec(path)
    assert "\n" not in str(err.value)
