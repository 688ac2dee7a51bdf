"""Stands in for ``modules/call_queue.py``: ``queue_lock``, the lock every generation holds (the API's
routes and the UI's queued calls), so one GPU job runs at a time. The WebUI's is a first-in-first-out
lock (``modules/fifo_lock.FIFOLock``); a plain lock has the same context-manager use. The call
wrappers (``wrap_queued_call``, ``wrap_gradio_gpu_call``, …) are left out."""

import threading

queue_lock = threading.Lock()
