"""`python -m lab.cli`: the `ecgpipe` command."""

import sys

from lab.cli.main import main

sys.exit(main())
