"""The ``nexomon`` command line.

``main`` parses arguments, ``commands`` does the work behind each command,
``demo`` runs the simulator and the daemon together, ``report`` reads the
store into tables.
"""
