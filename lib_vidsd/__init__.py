"""vidsd core: motion modules, patching, schedules, interpolation and video I/O.

Pure library: it never imports A1111's ``modules``, ``gradio`` or ``launch``; the
WebUI layer in ``scripts/`` translates between A1111 and these functions.
"""

__version__ = "0.1.0"
