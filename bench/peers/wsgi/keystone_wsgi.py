"""The WSGI entry point gunicorn serves Keystone through.

Keystone reads its command line when it builds the application, and under gunicorn that command
line is gunicorn's own; it is cleared here so that only OS_KEYSTONE_CONFIG_FILES configures it."""
import sys

sys.argv = sys.argv[:1]

from keystone.server.wsgi import initialize_public_application  # noqa: E402

application = initialize_public_application()
