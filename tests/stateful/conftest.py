"""The stateful tests import their settings from ``stateful_settings`` (a unique
module name: every test directory has a ``conftest``)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
