"""Records, naming rules and queries: pure data, no I/O."""
