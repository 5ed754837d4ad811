"""A math service on gevent (tcpmsg_gevent), callable from NestJS.

    python examples/math_gevent.py            # serve on a free port, call it, exit
    python examples/math_gevent.py --serve    # serve on 127.0.0.1:3000 until Ctrl-C

Each request runs in its own greenlet, so many slow handlers cost little. The router is
the same as on threads (``math_service.py``): only the binding changes.
"""

import tcpmsg_gevent
from math_service import main

if __name__ == "__main__":
    main(tcpmsg_gevent)
