"""``python -m trackmux``: the ``trackmux`` command, for an environment whose scripts
directory is not on ``PATH`` (a notebook's kernel, a cluster's module system)."""

from ._cli import main

if __name__ == "__main__":
    main()
