"""Reading the YAML data files of the package (fold lists, PAU definitions, description templates).

One reader so every such file fails the same way: a missing file or invalid YAML is one line naming
the file (configs go through `shared.config.load_yaml` instead, which also resolves ``_base``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shared.errors import UserError


def read_yaml(path: str | Path, what: str) -> Any:
    """The parsed YAML of `path`; `what` names the file's kind in the not-found error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
