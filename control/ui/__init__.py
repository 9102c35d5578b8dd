"""
The web dashboard: static files (plain ES modules, no build step) served at ``/ui/``.

The page reads the same REST API as the CLI, from the same origin, so it works
over mutual TLS and over plain HTTP on loopback alike (docs/dashboard.md).
"""

from control.ui.serve import STATIC_DIR, ui_resource

__all__ = ["STATIC_DIR", "ui_resource"]
