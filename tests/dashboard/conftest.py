"""Fixtures of the dashboard tests; helpers live in ``dashboard_support`` (a
unique module name: every test directory has a module called ``conftest``)."""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from dashboard_support import store_url as store_url
