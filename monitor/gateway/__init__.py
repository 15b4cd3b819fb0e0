"""The client of an OpenAI-compatible gateway.

``client`` sends the requests, ``exchange`` is what one yields, ``headers``
reads rate-limit and request-id headers, ``classify`` maps an exchange to an
outcome.
"""
