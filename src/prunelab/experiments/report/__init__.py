"""Reports: HTML pages with PNG plots and the CSV behind every plot.

``html`` / ``plots`` (rendering) → ``spectrum`` (a spectrum's files) → ``data`` (reading a
sweep's store) → ``sections`` / ``limits`` (the parts of a sweep report) → ``page``
(:func:`build_report`, the whole page, written atomically).
"""
