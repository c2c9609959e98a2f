"""Make this directory's helpers (``files_fake``) importable by the tests next to them."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
