"""
The asynchronous API client.

:mod:`control.client.interface` is the :class:`ShoalClient` seam and its
values; :class:`control.client.http.HTTPClient` is the one implementation;
:mod:`control.client.testing` runs it against the real API in memory.
"""
