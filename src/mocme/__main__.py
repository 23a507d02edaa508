"""``python -m mocme`` (and ``torchrun -m mocme``) run the command-line interface."""

import sys

from mocme.cli import main

sys.exit(main())
