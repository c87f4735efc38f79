"""The judge: echoes what a check sent through a proxy.

PLACEHOLDER: the checkers engineer owns this file."""
