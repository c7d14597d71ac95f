"""The output folder OUT: the only code that knows its layout.

- :mod:`papercoder.outdir.paths`: safe file access inside OUT (no link, no escape).
- :mod:`papercoder.outdir.workspace`: OUT's layout, artifact names and the run record
  (``run.json``).
- :mod:`papercoder.outdir.lock`: one command at a time per OUT.
"""
