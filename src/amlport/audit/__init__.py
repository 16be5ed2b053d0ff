"""amlport.audit."""
