import os
import tempfile

# Tests never touch the checkout's data/ folder: each session gets its own data root.
os.environ.setdefault("CAPTIONLIB_DATA", tempfile.mkdtemp(prefix="captionlib-test-"))
