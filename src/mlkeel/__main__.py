"""``python -m mlkeel``: the same CLI as the ``mlkeel`` console script."""

from mlkeel.cli import main

main()
