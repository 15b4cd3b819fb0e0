"""The status page: ``/``, incidents and their Atom feed, a page per model, and badges.

Rendered on the server from the database and the daemon's live results
(``routes.status_routes``); no CDN, no build step, a few lines of vanilla JS
for the filter box. Layer 3: it reads ``monitor.store`` and the top-level
value types; the daemon composes its routes into its app.
"""
