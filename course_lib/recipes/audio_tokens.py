"""Placeholder: notebook 11 audio tokens recipe (being written)."""
PRETRAINED = ()
