"""amlport.bundle."""
