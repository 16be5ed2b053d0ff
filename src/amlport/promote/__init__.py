"""Promote: workspace to workspace (dev → qa → prod), a flow above export and import.

Export's selection and planning decide what moves; the files are re-bound with import's
rules and written through import's write guard; ``--emit-assets``/``--register-mlflow`` run
import's own asset importers. See ``engine.py`` and docs/importing.md.
"""

from amlport.promote.engine import PromoteRequest, PromoteResult, run_promote

__all__ = ["PromoteRequest", "PromoteResult", "run_promote"]
