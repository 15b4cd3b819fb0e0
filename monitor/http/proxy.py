"""The environment's proxy for a URL, decided as httpx's client decides it.

Contract of ``env_proxy(url)``: the proxy httpx.AsyncClient(trust_env=True)
would send ``url`` through, read from the environment at each call (callers
cache it per origin). The rules are httpx's own, reused rather than copied:
``httpx._utils.get_environment_proxies`` reads ``HTTP_PROXY``,
``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (lower-case names too, through
urllib's ``getproxies``) into URL patterns, and the most specific matching
pattern wins (``URLPattern``'s priority, as in httpx's ``_transport_for_url``):
``NO_PROXY=*`` turns proxies off, ``example.com`` covers it and its
subdomains, ``.example.com`` only the subdomains, an IP or ``localhost`` only
itself, ``http://host:port`` that exact origin.

One addition, documented in tests/http/test_conformance.py's differences:
a ``NO_PROXY`` entry in CIDR form (``10.0.0.0/8``, ``fd00::/8``) also covers
every IP-literal host inside it, as curl and requests read it; httpx matches
only the network address itself.

Credentials in the proxy URL become a ``Proxy-Authorization: Basic`` header
(``headers``) and leave the URL; the caller sends it to the proxy (on the
request itself for an http origin, on the CONNECT for https). A proxy
scheme other than http or https (``socks5://``) raises
httpx.UnsupportedProtocol: aiohttp, which carries proxied requests, speaks
HTTP proxies only.
"""

from __future__ import annotations

import base64
import ipaddress
from typing import NamedTuple
from urllib.request import getproxies

import httpx
from httpx._utils import URLPattern, get_environment_proxies
from yarl import URL


class EnvProxy(NamedTuple):
    """The environment's proxy for one URL: its address and auth header, or Nones."""

    url: URL | None
    headers: dict[str, str] | None


NO_PROXY = EnvProxy(None, None)
_NetworkT = ipaddress.IPv4Network | ipaddress.IPv6Network


def env_proxy(url: httpx.URL) -> EnvProxy:
    """The proxy for ``url`` by httpx's rules plus NO_PROXY CIDR entries (not cached)."""
    mounts = get_environment_proxies()
    if not mounts or _in_no_proxy_network(url.host):
        return NO_PROXY
    chosen: str | None = None
    for pattern, proxy in sorted((URLPattern(key), proxy) for key, proxy in mounts.items()):
        if pattern.matches(url):
            chosen = proxy
            break
    if chosen is None:
        return NO_PROXY
    return _proxy(httpx.URL(chosen))


def _proxy(proxy: httpx.URL) -> EnvProxy:
    if proxy.scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(
            f"proxy scheme {proxy.scheme!r} is not supported (http and https proxies only)"
        )
    where = URL(str(proxy))
    if not (proxy.username or proxy.password):
        return EnvProxy(where, None)
    # As httpx builds it: UTF-8 user and password (URL-decoded), base64.
    userpass = f"{proxy.username}:{proxy.password}".encode()
    auth = "Basic " + base64.b64encode(userpass).decode("ascii")
    return EnvProxy(where.with_user(None), {"Proxy-Authorization": auth})


def _in_no_proxy_network(host: str) -> bool:
    """Whether ``host`` is an IP literal inside a NO_PROXY entry in CIDR form."""
    if "/" not in getproxies().get("no", ""):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in _networks())


def _networks() -> list[_NetworkT]:
    networks = []
    for entry in getproxies().get("no", "").split(","):
        entry = entry.strip()
        if "/" in entry and "://" not in entry:
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                continue  # not a network: httpx's patterns decide
    return networks
