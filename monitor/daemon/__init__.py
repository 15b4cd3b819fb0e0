"""The running daemon.

``root`` is the composition root; ``scheduler``, ``runner`` and
``probe_round`` run the probes; ``web`` serves the HTTP routes; ``statelog``
writes the probe log lines; ``runtime`` holds the interpreter settings.
"""
