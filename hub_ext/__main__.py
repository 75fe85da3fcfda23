import sys

from hub_ext.cli import main

sys.exit(main())
