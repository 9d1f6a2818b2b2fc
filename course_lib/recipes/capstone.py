"""Placeholder: notebook 11 frontier recipe (being written)."""
PRETRAINED = ()
