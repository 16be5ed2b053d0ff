"""Alias of ``helpers.walkfacts`` (moved to tests/helpers/ by issue 23) for tests written before
the move; removed after the merge."""

import sys

from helpers import walkfacts as _moved

sys.modules[__name__] = _moved
