"""HTTP transports behind httpx's API.

``transport`` is the HTTP/1.1 client (with ``connection`` and ``pool``),
``rxstamp`` the kernel receive stamps, ``aiohttp_transport`` and
``aiohttp_trace`` the transport used behind a proxy, ``timing`` the
phase-timing contract every transport reports through.
"""
