"""``python -m evo_frames`` is the ``evo-frames`` command."""

from __future__ import annotations

from .cli import main

main()
