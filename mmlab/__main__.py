"""`python -m mmlab`: the command line (mmlab.cli)."""
import sys

from mmlab.cli import main

sys.exit(main())
