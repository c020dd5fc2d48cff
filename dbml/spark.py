"""``dbml.spark``: the name users import for :mod:`dbml.integrations.spark` (the same module object)."""

import sys

from dbml.integrations import spark as _module

sys.modules[__name__] = _module
