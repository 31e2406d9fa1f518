"""``vla traces``: inspect reasoning-trace files (the JSONL schema of :mod:`vla.traces`).

One module per concern: :mod:`.load` reads a trace file, :mod:`.facts` derives what every
command shows about a record (written vs derived meta-action, verdict, ADE, rewards),
:mod:`.query` is the ``--filter`` expression language, :mod:`.sample_lookup` finds a record's sample
in a data set, :mod:`.figures` draws the camera grid and the top-down plot, and :mod:`.ls`,
:mod:`.show`, :mod:`.stats`, :mod:`.report` and :mod:`.server` are the subcommands, wired up
in :mod:`.cli`.
"""


class TraceToolError(Exception):
    """Bad input to a ``vla traces`` command; the CLI prints it on one line, exit code 2."""
