import sys

from ctbench.cli import main

sys.exit(main())
