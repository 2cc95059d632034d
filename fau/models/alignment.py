"""Face-alignment branch shared by ALGRNet and MGRR-Net (fau-models.md §2.2, JAA-Net ``AlignNet``).

Three conv blocks with max-pooling on the stem feature (`ConvBlocks`, widths 12u/16u/20u:
44 → 5, a 4000-d feature for u = 8), then FC 4000 → 64u (512) → FC → 2m (m = 49 landmarks).
The landmarks are returned in crop pixel coordinates; the loss is `losses.alignment_loss` (eq. 3.1).
"""

from __future__ import annotations

import torch
from torch import nn

from fau.models.stem import ConvBlocks


class AlignmentBranch(nn.Module):
    """Landmark regressor; `forward(F)` → (feature (B, feat_dim), landmarks (B, m, 2) in pixels).

    The last FC predicts pixel offsets from the crop centre, x = crop/2 + raw [ours: JAA-Net regresses
    pixels directly; the constant shift only starts every landmark at the centre instead of at the
    corner, and keeps JAA-Net's gradient scale, so the paper's SGD lr 0.01 stays stable].
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
