import sys

from edge.models.commands import main

sys.exit(main())
