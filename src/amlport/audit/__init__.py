"""amlport.audit: resilience and hygiene rules over a workspace's storage and Azure resources.

Rules are data (``rules.yaml``, stable ids); checks turn facts into pass / fail / not checked;
reporters render the report as a rich table, JSON, SARIF 2.1.0 or Markdown.
"""

from amlport.audit.engine import AuditReport, Result, State
from amlport.audit.runner import AuditRequest, run_audit

__all__ = ["AuditReport", "AuditRequest", "Result", "State", "run_audit"]
