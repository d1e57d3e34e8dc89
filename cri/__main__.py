"""`python -m cri` runs the daemon, like `crib serve`."""

from __future__ import annotations

import sys

from cri.cli import main

sys.exit(main())
