"""`python -m bot` is `scopebot`."""

import sys

from bot.cli import main

sys.exit(main())
