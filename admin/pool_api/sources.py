"""Sources endpoints (seed 003). PLACEHOLDER: the sources engineer owns this file."""
