import sys

from ctbench_cli.main import main

sys.exit(main())
