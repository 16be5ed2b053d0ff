"""amlport.exporters: built-in plugins (registered in a static table; see docs/design)."""
