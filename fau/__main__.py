import sys

from fau.cli import main

sys.exit(main())
