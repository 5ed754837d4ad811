"""``python -m tcpmsg_threads``: the ``tcpmsg`` command."""

import sys

from tcpmsg_threads.cli import main

sys.exit(main())
