"""Model backends and the registry that builds them from config."""
