"""The running daemon.

``root`` is the composition root and ``wiring`` the parts it shares with
``nexomon probe``; ``standby`` decides whether this process probes its
location (PostgreSQL's lock); ``scheduler``, ``runner`` and ``probe_round``
run the probes; ``web`` serves the HTTP routes and ``answers`` what
``/readyz`` and ``/api/v1/status`` say; ``maintenance`` runs the hourly
rollup and retention; ``statelog`` writes the probe log lines; ``runtime``
holds the interpreter settings.
"""
