"""``python -m dbml``: the dbml shell (see dbml.integrations.shell)."""

import sys

from dbml.integrations.shell import main

__all__: list[str] = []

sys.exit(main())
