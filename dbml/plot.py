"""``dbml.plot``: the name users import for :mod:`dbml.integrations.plot` (the same module object)."""

import sys

from dbml.integrations import plot as _module

sys.modules[__name__] = _module
