"""`python -m amplify` == the `amplify` command."""

import sys

from amplify.cli import main

sys.exit(main())
