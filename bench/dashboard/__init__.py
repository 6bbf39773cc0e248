"""Dashboard benchmark: the overview page's load time in a real browser over a 200,000-equipment registry."""
