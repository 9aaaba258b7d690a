"""PyInstaller entry point of the frozen ``spinedesk``: the same ``main()`` as the console script.

``freeze_support()`` comes first: ``spinedesk service --workers N`` starts its uvicorn workers with
multiprocessing's *spawn* method, and in a frozen build each worker re-runs this executable.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from app.__main__ import main

    sys.exit(main())
