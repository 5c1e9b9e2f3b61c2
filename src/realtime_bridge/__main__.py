"""``python -m realtime_bridge``: the same as the ``realtime-bridge`` command."""

import sys

from realtime_bridge.cli import main

sys.exit(main())
