"""The data plane: mitmproxy addons, one per pipeline stage (see DESIGN.md)."""
