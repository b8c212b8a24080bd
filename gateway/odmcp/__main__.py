"""``python -m odmcp`` is the same as ``mcp-gateway``."""

import sys

from odmcp.cli import main

sys.exit(main())
