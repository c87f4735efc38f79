#!/usr/bin/env python3
"""Start the Portcullis control plane (Core API) or run one of its commands.

python run_admin.py [serve] [--host 127.0.0.1] [--port 5000]
python run_admin.py migrate
python run_admin.py create-user EMAIL [--name NAME]
python run_admin.py rotate-secrets
"""

import sys

from admin.cli import main

if __name__ == "__main__":
    sys.exit(main())
