"""A math service on plain threads (tcpmsg_threads), callable from NestJS.

    python examples/math_threads.py            # serve on a free port, call it, exit
    python examples/math_threads.py --serve    # serve on 127.0.0.1:3000 until Ctrl-C
"""

import tcpmsg_threads
from math_service import main

if __name__ == "__main__":
    main(tcpmsg_threads)
