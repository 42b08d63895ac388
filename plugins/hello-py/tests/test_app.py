"""The Python sample's own tests: scripted calls, no phone
(`python3 -m unittest discover plugins/hello-py/tests`; set HOOKLINE to the
hookline binary if it is not on the PATH, HELLO_PY_WASM to skip the build)."""

import os
import pathlib
import sys
import unittest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "plugin-sdk" / "python"))

from hookline_test import Harness  # noqa: E402


def harness():
    if not hasattr(harness, "cached"):
        wasm = os.environ.get("HELLO_PY_WASM")
        harness.cached = Harness(wasm) if wasm else Harness.build(HERE.parent)
    return harness.cached


class HelloPy(unittest.TestCase):
    def test_the_scripts_in_this_folder_pass(self):
        harness().assert_scripts_pass(HERE)

    def test_a_silent_caller_hears_the_operator_prompt(self):
        r = harness().run('[[caller]]\nsilence = true\n[[caller]]\nsilence = true\n')
        self.assertEqual(r.outcome, "ok")
        self.assertIn("py:digit:-", r.path)
        self.assertEqual(r.verbs[-2:], ["play prompt:operator", "hangup"])

    def test_a_crash_is_a_trap_naming_the_python_error(self):
        r = harness().run('[call.config]\ncrash = true\n')
        self.assertTrue(r.outcome.startswith("trap:"), r.outcome)
        self.assertIn("ZeroDivisionError: division by zero", r.outcome)
        self.assertTrue(any(line.startswith("stderr: Traceback") for line in r.logs), r.logs)

    def test_a_wrong_expectation_fails_with_a_diff(self):
        r = harness().run('[[caller]]\nkeys = "1"\n[expect]\nverbs = ["answer", "reject 486"]\n')
        self.assertFalse(r.passed)
        self.assertIn("reject 486", r.diff)


if __name__ == "__main__":
    unittest.main()
