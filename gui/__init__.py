"""The desktop app (PySide6): drop images, pick a model, upscale, compare before and after.

PySide6 is imported only under this package; the core never needs it.
"""
