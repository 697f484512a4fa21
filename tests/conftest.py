"""Settings every test process inherits."""

import os

# A test webhook that sheds would answer "unchanged" when the test machine stalls a
# worker past the 50 ms budget, and a test expecting a patch would fail by chance.
# Shedding is proven by the tests that pass --shed-after themselves (the flag wins).
os.environ.setdefault("WEBHOOK_SHED_AFTER", "0")
