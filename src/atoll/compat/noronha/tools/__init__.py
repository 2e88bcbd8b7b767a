"""``noronha.tools``: shortcuts, publish, serving (and its older name, online)."""
