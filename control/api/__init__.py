"""The REST API of the control service (Flocker v1 compatible, plus ``/v1/shoal/``)."""

from control.api.app import ControlAPI

__all__ = ["ControlAPI"]
