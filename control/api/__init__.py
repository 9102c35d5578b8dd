"""
The REST API of the control service (Flocker v1 compatible, plus ``/v1/shoal/``).

:class:`control.api.app.ControlAPI` is the Klein application.
"""
