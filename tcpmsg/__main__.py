"""``python -m tcpmsg``: the ``tcpmsg`` command."""

import sys

from tcpmsg.cli import main

sys.exit(main())
