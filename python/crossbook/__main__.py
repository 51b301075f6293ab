import sys

from crossbook.cli import main

sys.exit(main())
