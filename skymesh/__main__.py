"""`python -m skymesh` is the `skymesh` command."""

import sys

from skymesh.cli.main import main

sys.exit(main())
