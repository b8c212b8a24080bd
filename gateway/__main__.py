"""``python -m gateway`` is the same as ``mcp-gateway``."""

import sys

from gateway.cli import main

sys.exit(main())
