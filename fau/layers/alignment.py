"""Face-alignment branch shared by ALGRNet and MGRR-Net.

"An efficient landmark extraction network after the stem network ... including three convolutional
layers connected to a max-pooling layer" (thesis §3.2.2; "three convolutional blocks", §4.3.1),
with the parameters of JAA-Net's ``AlignNet`` (thesis §3.3.2: "the same as Shao et al. (2021)"):
three conv blocks with max-pooling on the stem feature (`ConvBlocks`, widths 12u/16u/20u: 44 → 5,
a 4000-d feature for u = 8), then FC 4000 → 512 → FC → 2m (m = 49 landmarks, thesis §3.3.2).
The landmarks are returned in crop pixel coordinates; the loss is `fau.losses.alignment_loss`
(thesis eq. 3.1).
"""

from __future__ import annotations

import torch
from torch import nn

from fau.layers.conv import ConvBlocks


class AlignmentBranch(nn.Module):
    """Landmark regressor; `forward(F)` → (feature (B, feat_dim), landmarks (B, m, 2) in pixels).

    The last FC predicts pixel offsets from the crop centre, x = crop/2 + raw (ours: JAA-Net regresses
    pixels directly; the shift only starts every landmark at the centre instead of the corner, see
    docs/fau.md, decision 'landmark output offset').
    """

    def __init__(self, in_channels: int, feature_size: int, unit_dim: int, hidden: int,
                 num_landmarks: int, crop: int) -> None:
        super().__init__()
        self.features = ConvBlocks(in_channels, (12 * unit_dim, 16 * unit_dim, 20 * unit_dim))
        side = self.features.out_size(feature_size)
        if side < 1:
            raise ValueError(f"a {feature_size}x{feature_size} stem map is too small for three pooling blocks")
        self.feature_dim = self.features.out_channels * side * side
        self.regressor = nn.Sequential(nn.Linear(self.feature_dim, hidden), nn.Linear(hidden, 2 * num_landmarks))
        self.num_landmarks, self.crop = num_landmarks, crop

    def forward(self, stem_feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.features(stem_feature).flatten(1)
        raw = self.regressor(feature).view(-1, self.num_landmarks, 2)
        return feature, raw + 0.5 * self.crop
