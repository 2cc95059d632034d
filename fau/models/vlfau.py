"""VL-FAU, explainable FAU recognition by vision-language joint learning (thesis Ch. 5; the VL-FAU paper,
"Towards End-to-End Explainable Facial Action Unit Recognition via Vision-Language Joint Learning",
ACM MM 2024, has the same method).

Swin stem → MARL: multi-scale combination (MSC, eq. 5.1) → one DAIR per AU (eqs. 5.2–5.3) →
per-AU classifiers on the refined features, their position average or the whole map (``au_readout``;
L_Fau, eqs. 5.8–5.9). Two language auxiliaries
(thesis §5.3.2): LLGA, one soft-attention LSTM decoder shared by all AUs ("the local language models
among the multiple AU branches are shared") that describes AU i's state from its refined features
V̂_i (eqs. 5.7, 5.10; an AU token starts the caption: docs/fau.md, decision 'AU start token'), and
GLGA, a decoder over the combined features V that describes the whole face (eqs. 5.4–5.6, 5.11)
with an AU classifier on its time-averaged attention context (L_Gau). Loss (eq. 5.12): L_Fau +
L_Lgen + L_Ggen + L_Gau, all weights 1. At inference only the image is needed: AU probabilities, one
local description per AU and a global one (greedy or beam decoding), and the DAIR attention maps.

Ablation switches (thesis Tab 5.4): ``marl`` false = last Swin stage only, no MSC and no DAIR (①);
``llga`` / ``glga`` false drop the local / global auxiliary (GLGA takes L_Gau with it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from fau.aus import resolve_aus
from fau.language.explain import description_state, explanation
from fau.language.targets import check_aus, load_template
from fau.language.vocab import Vocabulary, encode_targets
from fau.layers.conv import GroupedLinear
from fau.layers.language_decoder import AttentionLSTMDecoder, Decoded, WordLayer
from fau.layers.marl import DAIR, LastStage, MultiScaleCombination, SwinStages
from fau.losses import sequence_nll, weighted_bce
from fau.models.base import FAUModel, check_label_count
from fau.models.registry import MODELS
from shared.config import bounded
from shared.errors import UserError

DECODINGS = ("greedy", "beam")


@dataclass(frozen=True)
class BackboneConfig:
    """``model.backbone``: the timm Swin stem (`fau.layers.marl.SwinStages`)."""

    name: str = "swin_base_patch4_window7_224"
    weights: str = bounded("timm/swin_base_patch4_window7_224.ms_in1k",
                           doc="none | a local .safetensors file | a hub name (fau.pretrained)")
    drop_path: float = bounded(0.1, minimum=0.0, maximum=1.0)
    options: dict[str, Any] = bounded({}, doc="extra timm constructor keyword arguments")
    stem: Literal["patch", "conv"] = "patch"  # patch: Swin's strided patch embedding; conv: a small conv stack (marl.ConvPatchStem)


@dataclass(frozen=True)
class MSCConfig:
    """``model.msc``: the multi-scale combination (eq. 5.1)."""

    channels: int = bounded(256, minimum=1, doc="per-stage 3×3 conv width")
    grid: int = bounded(14, minimum=1, doc="common grid side")
    dim: int = bounded(512, minimum=1, doc="d, the width of V (thesis §5.4.2)")


@dataclass(frozen=True)
class DAIRConfig:
    """``model.dair``: the per-AU CBAM-style refinement (eqs. 5.2–5.3)."""

    reduction: int = bounded(16, minimum=1, doc="MLP reduction ratio r")
    spatial_kernel: int = bounded(3, minimum=1, doc="spatial conv side (thesis §5.3.1: 3×3)")

    def __post_init__(self) -> None:
        if self.spatial_kernel % 2 == 0:
            raise ValueError(f"dair.spatial_kernel: {self.spatial_kernel} must be odd")


@dataclass(frozen=True)
class LanguageConfig:
    """``model.language``: the description template and the two decoders."""

    template: str = "default"
    hidden: int = bounded(512, minimum=1, doc="h (thesis §5.4.2)")
    embed: int = bounded(512, minimum=1)
    attention: int = bounded(512, minimum=1)
    dropout: float = bounded(0.5, minimum=0.0, maximum=1.0)
    au_token: bool = True
    shared_output: bool = True
    local_max_len: int = bounded(40, minimum=1)
    global_max_len: int = bounded(60, minimum=1)
    beam: int = bounded(3, minimum=1)


@dataclass(frozen=True)
class LossConfig:
    """``model.loss``: the weights of eq. 5.12 and the forms of L_Fau's weights and L_Gau's classifier."""

    au_weight_norm: Literal["sum_to_n", "sum_to_one"] = "sum_to_one"
    lgen_weight: float = bounded(1.0, minimum=0.0)
    ggen_weight: float = bounded(1.0, minimum=0.0)
    gau_weight: float = bounded(1.0, minimum=0.0)
    gau_classifier: Literal["separate", "main"] = "separate"


@dataclass(frozen=True)
class VLFAUConfig:
    """The ``model:`` section of a VL-FAU config; the defaults are ``fau/configs/vlfau_bp4d.yaml``."""

    dataset: str = "bp4d"
    input_size: int = bounded(224, minimum=16, doc="crop side (must equal data.crop)")
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    marl: bool = True
    msc: MSCConfig = field(default_factory=MSCConfig)
    dair: DAIRConfig = field(default_factory=DAIRConfig)
    llga: bool = True
    glga: bool = True
    language: LanguageConfig = field(default_factory=LanguageConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    au_readout: Literal["mean", "flatten"] = "mean"
    explanation_mode: Literal["generated", "template", "both"] = "both"

    def __post_init__(self) -> None:
        if self.au_readout == "flatten" and self.loss.gau_classifier == "main":
            raise ValueError("loss.gau_classifier: 'main' reuses the per-AU classifier on a d-vector, "
                             "which needs au_readout 'mean' (the flattened map is N·d wide)")


def trim(tokens: torch.Tensor, pad: int) -> torch.Tensor:
    """Rows that have a target (first generated id is not ``<pad>``), cut to the longest one."""
    length = int((tokens != pad).sum(dim=1).max())
    return tokens[:, :length]


@MODELS.register("vlfau", configs={"tiny": "vlfau_tiny", "bp4d": "vlfau_bp4d", "disfa": "vlfau_disfa"},
                 summary="VL-FAU, vision-language joint learning with local and global descriptions (thesis Ch. 5)")
class VLFAU(FAUModel):
    """VL-FAU (module docstring); ``prior`` is accepted for the common constructor and not used."""

    name = "vlfau"
    Config = VLFAUConfig

    @classmethod
    def without_pretrained(cls, section: Mapping[str, Any]) -> dict[str, Any]:
        """``backbone.weights: none``: the checkpoint holds the trained backbone."""
        backbone = {**dict(section.get("backbone") or {}), "weights": "none"}
        return {**dict(section), "backbone": backbone}

    def __init__(self, config: VLFAUConfig, num_aus: int, prior: np.ndarray | None = None) -> None:
        cfg = config
        aus = resolve_aus(cfg.dataset)
        check_label_count(self.name, cfg.dataset, len(aus), num_aus)
        super().__init__(num_aus, cfg.input_size)
        self.config, self.aus = cfg, aus

        backbone = cfg.backbone
        self.backbone = SwinStages(backbone.name, cfg.input_size, backbone.weights, backbone.drop_path,
                                   backbone.options, backbone.stem)
        self.backbone_status = self.backbone.status

        self.marl = cfg.marl
        dim = cfg.msc.dim
        if self.marl:
            self.combine: nn.Module = MultiScaleCombination(self.backbone.channels, cfg.msc.channels, cfg.msc.grid, dim)
            self.dair: DAIR | None = DAIR(num_aus, dim, cfg.dair.reduction, cfg.dair.spatial_kernel)
        else:
            self.combine, self.dair = LastStage(self.backbone.channels, dim), None
        self.readout = cfg.au_readout
        positions = self._positions(cfg) if self.readout == "flatten" else 1
        self.classifier = GroupedLinear(num_aus, positions * dim, 1)

        self.llga, self.glga = cfg.llga, cfg.glga
        lang = cfg.language
        self.template = load_template(None if lang.template == "default" else lang.template)
        check_aus(self.template, aus)
        self.vocab = Vocabulary.from_template(self.template)
        self.au_start = lang.au_token
        self.local_len, self.global_len, self.beam_size = lang.local_max_len, lang.global_max_len, lang.beam
        pad = self.vocab.pad

        def decoder() -> AttentionLSTMDecoder:
            return AttentionLSTMDecoder(dim, lang.hidden, lang.embed, lang.attention, lang.dropout)

        self.local_decoder = decoder() if self.llga else None
        self.global_decoder = decoder() if self.glga else None
        never = self.vocab.never_generated()
        self.words = (WordLayer(len(self.vocab), lang.embed, lang.hidden, pad, never)
                      if self.llga or self.glga else None)
        self.global_words = (WordLayer(len(self.vocab), lang.embed, lang.hidden, pad, never)
                             if self.llga and self.glga and not lang.shared_output else None)

        loss = cfg.loss
        self.weight_norm = loss.au_weight_norm
        self.lgen_weight, self.ggen_weight, self.gau_weight = loss.lgen_weight, loss.ggen_weight, loss.gau_weight
        self.gau_head = nn.Linear(dim, num_aus) if self.glga and loss.gau_classifier == "separate" else None
        self.explanation_mode = cfg.explanation_mode

    def _positions(self, cfg: VLFAUConfig) -> int:
        """N = H·W, the positions of V (the MSC grid, or the last Swin stage without MARL)."""
        if cfg.marl:
            return cfg.msc.grid ** 2
        side = cfg.input_size // self.backbone.reductions[-1]
        return side * side

    # --- vision -----------------------------------------------------------------------------

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``au_logits`` (B, A), ``features`` V (B, N, d), ``au_features`` V̂_i (B, A, N, d), N = H·W
        positions, and with MARL ``dair_maps`` (B, A, H, W), the DAIR spatial attention of eq. 5.3."""
        self.check_images(images)
        v = self.combine(self.backbone(images))                               # (B, d, H, W)
        b, d, h, w = v.shape
        if self.dair is not None:
            refined, maps = self.dair(v)                                      # (B, A, d, H, W)
        else:
            refined, maps = v.unsqueeze(1).expand(b, self.num_aus, d, h, w), None
        logits = self.classifier(self._read_out(refined)).squeeze(-1)
        # (the order of these views fixes autograd's order of summing V's gradients: keep it)
        out = {"au_logits": logits, "features": v.flatten(2).transpose(1, 2),
               "au_features": refined.flatten(3).transpose(2, 3)}
        if maps is not None:
            out["dair_maps"] = maps
        return out

    def _read_out(self, refined: torch.Tensor) -> torch.Tensor:
        """The classifier input per AU branch (B, A, ·) from V̂_i (B, A, d, H, W): ``mean``, the average
        over positions (d); ``flatten``, the whole map (H·W·d), so "one fully connected layer" (thesis
        §5.3.3) sees where on the face a feature is (docs/fau.md, decision 'AU readout')."""
        if self.readout == "mean":
            return refined.mean(dim=(-2, -1))
        return refined.flatten(2)

    def explain(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``dair_maps`` (B, A, H, W): each AU branch's DAIR spatial attention ("a spatial attention map,
        which focuses on highly responsive muscle areas associated with the current AU", thesis
        §5.3.1). Without MARL there is no DAIR and nothing to show: an empty dict."""
        outputs = self(images)
        return {"dair_maps": outputs["dair_maps"]} if "dair_maps" in outputs else {}

    # --- language -----------------------------------------------------------------------------

    @property
    def has_language(self) -> bool:
        """True unless both language auxiliaries are switched off (then no text targets are needed)."""
        return self.local_decoder is not None or self.global_decoder is not None

    def _words(self, kind: str) -> WordLayer:
        return self.global_words if kind == "global" and self.global_words is not None else self.words

    def _starts(self, batch: int, device: torch.device) -> torch.Tensor:
        ids = [self.vocab.start(au if self.au_start else None) for au in self.aus]
        return torch.tensor(ids, dtype=torch.int64, device=device).repeat(batch)

    def encode_language(self, entries: Sequence[dict], labels: Sequence[str]) -> dict[str, torch.Tensor]:
        """Per-row token tensors of ``language.jsonl`` entries (`fau.language.vocab.encode_targets`),
        the extra batch keys ``local_tokens`` (A, 1 + local_max_len) and ``global_tokens``."""
        if len(labels) != self.num_aus:
            raise UserError(f"vlfau: {len(labels)} label columns for a {self.num_aus}-AU model")
        return encode_targets(self.vocab, entries, labels, self.aus, self.local_len, self.global_len, self.au_start)

    @staticmethod
    def _batch_tokens(batch: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
        if key not in batch:
            raise ValueError(f"vlfau: the batch has no {key!r}; build the dataset with the model's "
                             "encode_language() targets")
        return batch[key]

    def _local_forced(self, outputs: Mapping[str, torch.Tensor],
                      batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Teacher-forced local word logits (S, T, V) and targets (S, T) of every known (image, AU)."""
        tokens = self._batch_tokens(batch, "local_tokens").flatten(0, 1)
        keep = tokens[:, 1] != self.vocab.pad
        if not bool(keep.any()):
            return None
        tokens = trim(tokens[keep], self.vocab.pad)
        features = outputs["au_features"].flatten(0, 1)[keep]
        targets = tokens[:, 1:]
        logits, _, _ = self.local_decoder(features, tokens[:, :-1], self._words("local"),
                                          lengths=(targets != self.vocab.pad).sum(dim=1))
        return logits, targets

    def _global_forced(self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Teacher-forced global logits, targets, time-averaged contexts (S, d) and the row mask (B,)."""
        tokens = self._batch_tokens(batch, "global_tokens")
        keep = tokens[:, 1] != self.vocab.pad
        if not bool(keep.any()):
            return None
        tokens = trim(tokens[keep], self.vocab.pad)
        targets = tokens[:, 1:]
        scored = targets != self.vocab.pad
        logits, _, contexts = self.global_decoder(outputs["features"][keep], tokens[:, :-1], self._words("global"),
                                                  lengths=scored.sum(dim=1))
        mask = scored.to(contexts.dtype).unsqueeze(-1)
        averaged = (contexts * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)    # z = 1/T Σ α_t V
        return logits, targets, averaged, keep

    def _gau_logits(self, z: torch.Tensor) -> torch.Tensor:
        """L_Gau's AU classifier on z: its own Linear(d → A), or the main per-AU classifier ("a shared
        linear classifier", thesis §5.3.3; docs/fau.md, decision 'L_Gau classifier')."""
        if self.gau_head is not None:
            return self.gau_head(z)
        return self.classifier(z.unsqueeze(1).expand(-1, self.num_aus, -1)).squeeze(-1)

    def training_losses(self, outputs: Mapping[str, torch.Tensor],
                       batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """L_Fau + L_Lgen + L_Ggen + L_Gau (eq. 5.12, config weights, 1 in the paper); the batch carries
        ``labels``, ``au_weights`` and, with the language heads, ``local_tokens`` / ``global_tokens``."""
        labels, weights = batch["labels"], batch["au_weights"]
        if self.weight_norm == "sum_to_one":   # eq. 5.9 as printed (docs/fau.md, decision 'class-weight normalisation')
            weights = weights / weights.sum()
        zero = outputs["au_logits"].new_zeros(())
        losses = {"fau": weighted_bce(outputs["au_logits"], labels, weights)}
        total = losses["fau"]
        if self.local_decoder is not None:
            forced = self._local_forced(outputs, batch)
            losses["lgen"] = sequence_nll(*forced, self.vocab.pad) if forced is not None else zero
            total = total + self.lgen_weight * losses["lgen"]
        if self.global_decoder is not None:
            forced = self._global_forced(outputs, batch)
            if forced is None:
                losses["ggen"] = losses["gau"] = zero
            else:
                logits, targets, z, keep = forced
                losses["ggen"] = sequence_nll(logits, targets, self.vocab.pad)
                losses["gau"] = weighted_bce(self._gau_logits(z), labels[keep], weights)
            total = total + self.ggen_weight * losses["ggen"] + self.gau_weight * losses["gau"]
        losses["total"] = total
        return losses

    def _decode(self, decoder: AttentionLSTMDecoder, features: torch.Tensor, start: torch.Tensor,
                max_len: int, words: WordLayer, decoding: str) -> Decoded:
        if decoding not in DECODINGS:
            raise UserError(f"decoding {decoding!r} is not one of {', '.join(DECODINGS)}")
        if decoding == "beam":
            return decoder.beam(features, start, max_len, words, self.vocab.eos, self.vocab.pad, self.beam_size)
        return decoder.greedy(features, start, max_len, words, self.vocab.eos, self.vocab.pad)

    def generate(self, outputs: Mapping[str, torch.Tensor], decoding: str = "greedy") -> dict[str, Decoded]:
        """Decoded ``local`` (B·A sequences, AU-major within each image) and ``global`` (B) sequences."""
        b = outputs["au_logits"].shape[0]
        device = outputs["au_logits"].device
        out = {}
        if self.local_decoder is not None:
            out["local"] = self._decode(self.local_decoder, outputs["au_features"].flatten(0, 1),
                                        self._starts(b, device), self.local_len, self._words("local"), decoding)
        if self.global_decoder is not None:
            start = torch.full((b,), self.vocab.bos, dtype=torch.int64, device=device)
            out["global"] = self._decode(self.global_decoder, outputs["features"], start, self.global_len,
                                         self._words("global"), decoding)
        return out

    def describe(self, outputs: Mapping[str, torch.Tensor], labels: Sequence[str],
                 decoding: str = "greedy") -> list[dict[str, Any]] | None:
        """Generated descriptions per image: ``{"global": str | None, "local": {label: str}}``
        (global None without GLGA, local empty without LLGA; None when both are off)."""
        if len(labels) != self.num_aus:
            raise UserError(f"vlfau: {len(labels)} labels for a {self.num_aus}-AU model")
        if self.local_decoder is None and self.global_decoder is None:
            return None
        decoded = self.generate(outputs, decoding)
        b = outputs["au_logits"].shape[0]
        local = ([self.vocab.decode(row) for row in decoded["local"].tokens.tolist()]
                 if "local" in decoded else None)
        glob = [self.vocab.decode(row) for row in decoded["global"].tokens.tolist()] if "global" in decoded else None
        return [{"global": glob[i] if glob is not None else None,
                 "local": {} if local is None else dict(zip(labels, local[i * self.num_aus:(i + 1) * self.num_aus]))}
                for i in range(b)]

    def explain_text(self, outputs: Mapping[str, torch.Tensor], labels: Sequence[str], decoding: str = "greedy",
                     mode: str | None = None, genders: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Labelled text explanations per image: the generated text, the template text of the
        predicted states, or both (`mode`, default the config's ``explanation_mode``; the generated
        text may contradict the predicted state, thesis §5.4.5: docs/fau.md, decision 'explanation mode')."""
        mode = mode or self.explanation_mode
        generated = self.describe(outputs, labels, decoding) if mode != "template" else None
        probs = torch.sigmoid(outputs["au_logits"].float()).tolist()
        genders = list(genders) if genders is not None else ["unknown"] * len(probs)
        return [explanation(generated[i] if generated is not None else None, probs[i], self.aus,
                            self.template, mode, genders[i]) for i in range(len(probs))]

    @torch.no_grad()
    def language_statistics(self, outputs: Mapping[str, torch.Tensor],
                            batch: Mapping[str, torch.Tensor]) -> dict[str, tuple[float, float]]:
        """(hits, count) per language metric of one batch (`fau eval`, Tab 5.4): ``word_top5_local`` /
        ``word_top5_global``, teacher-forced top-5 word accuracy over the target tokens, and
        ``description_state``, greedy local descriptions whose state (`description_state`) equals
        the label, over the known labels."""
        pad = self.vocab.pad
        stats: dict[str, tuple[float, float]] = {}

        def top5(forced: tuple[torch.Tensor, ...] | None) -> tuple[float, float]:
            if forced is None:
                return 0.0, 0.0
            logits, targets = forced[0], forced[1]
            k = min(5, logits.shape[-1])
            hit = (logits.topk(k, dim=-1).indices == targets.unsqueeze(-1)).any(dim=-1) & (targets != pad)
            return float(hit.sum()), float((targets != pad).sum())

        if self.local_decoder is not None:
            stats["word_top5_local"] = top5(self._local_forced(outputs, batch))
            decoded = self._decode(self.local_decoder, outputs["au_features"].flatten(0, 1),
                                   self._starts(outputs["au_logits"].shape[0], outputs["au_logits"].device),
                                   self.local_len, self._words("local"), "greedy")
            labels = batch["labels"].flatten().tolist()
            aus = list(self.aus) * outputs["au_logits"].shape[0]
            hits = count = 0
            for row, label, au in zip(decoded.tokens.tolist(), labels, aus):
                if label >= 0:
                    count += 1
                    hits += int(description_state(self.vocab.decode(row), au, self.template) == label)
            stats["description_state"] = (float(hits), float(count))
        if self.global_decoder is not None:
            stats["word_top5_global"] = top5(self._global_forced(outputs, batch))
        return stats
