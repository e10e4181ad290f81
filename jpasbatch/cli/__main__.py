"""``python -m jpasbatch.cli``: the ``jpasbatch`` command without the installed script."""

import sys

from jpasbatch.cli import main

sys.exit(main())
