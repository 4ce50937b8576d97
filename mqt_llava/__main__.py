"""`python -m mqt_llava ...`: the `mqt-llava` command, for environments without its script."""

import sys

from mqt_llava.cli import main

sys.exit(main())
