"""Prometheus metrics.

``exporter`` is the result sink, ``metrics`` the metric set, ``children``
and ``slots`` the cached children and bounded label values, ``collectors``
the registries, ``exposition`` the scrape cache and ``render`` its sliced
renderer.
"""
