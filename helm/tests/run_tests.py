"""Runs every helm/tests/test_*.py and ends with a "helm: N passed, N failed" line.

Started by run.sh (which installs the tools first); pass -v for one line per test.
"""

import pathlib
import sys
import unittest

here = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(here))
suite = unittest.defaultTestLoader.discover(str(here), pattern="test_*.py", top_level_dir=str(here))
result = unittest.TextTestRunner(verbosity=2 if "-v" in sys.argv[1:] else 1).run(suite)
# A failing subtest counts once, for the test it belongs to.
failed_tests = {getattr(t, "test_case", t).id() for t, _ in result.failures + result.errors}
failed = len(failed_tests) + len(result.unexpectedSuccesses)
print(f"helm: {max(result.testsRun - failed, 0)} passed, {failed} failed")
sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
