"""Region + grid features from raw photos in the precomp layout (`retrieval features`).

`extract` holds the detector and the pooling (BUTD-style 36 regions × 2,048-d, 7×7 grid; docs/retrieval.md
the BUTD layout); `gallery` walks a folder, keeps a resume journal and writes the split files.
"""

from retrieval.features.extract import ExtractorSettings, RegionGridExtractor, settings_from_config
from retrieval.features.gallery import GallerySummary, extract_gallery

__all__ = ["ExtractorSettings", "GallerySummary", "RegionGridExtractor", "extract_gallery", "settings_from_config"]
