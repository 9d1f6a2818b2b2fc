"""Placeholder: notebook 11 open projects recipe (being written)."""
PRETRAINED = ()
