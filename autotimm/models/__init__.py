"""Network parts in reading order: backbone -> neck (FPN) -> heads."""
