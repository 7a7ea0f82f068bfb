"""Shared test set-up: every test run uses a cache directory of its own unless one is given."""
import os
import tempfile

# Keep the unit tests' cache apart from a user's, unless the Makefile (or the user) chose one.
os.environ.setdefault("COURSE_CACHE_DIR", tempfile.mkdtemp(prefix="course-cache-"))
