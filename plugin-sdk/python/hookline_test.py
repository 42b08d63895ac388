"""Testing a Hookline plugin from Python's own tests (unittest, pytest), with
no phone and no node: scripted calls run against the plugin's component
through `hookline plugin test --json`, so the rules a script is checked by
are the node's own. Scripts are the TOML files plugin-sdk/README.md
describes, from files or written in the test.

    from hookline_test import Harness

    harness = Harness.build("plugins/hello-py")      # componentize-py, once
    report = harness.run('[[caller]]\\nkeys = "2"\\n')
    assert "play prompt:support" in report.verbs
    harness.assert_scripts_pass("plugins/hello-py/tests")

The `hookline` binary is $HOOKLINE if set, else `hookline` on the PATH.
This module runs on the host; it does not import the plugin's bindings.
"""

import json
import os
import pathlib
import subprocess
import tempfile
from dataclasses import dataclass, field

SDK = pathlib.Path(__file__).resolve().parent
WIT = SDK.parent / "wit"


@dataclass
class Report:
    """What the plugin did on one scripted call."""

    passed: bool
    diff: str | None = None
    verbs: list = field(default_factory=list)
    path: list = field(default_factory=list)
    kv: dict = field(default_factory=dict)
    outcome: str = ""
    logs: list = field(default_factory=list)


class HarnessError(Exception):
    """The script did not run: it does not parse, or the component does not load."""


class Harness:
    def __init__(self, wasm, hookline=None):
        self.wasm = str(wasm)
        self.hookline = hookline or os.environ.get("HOOKLINE", "hookline")

    @classmethod
    def build(cls, app_dir, module="app", out=None, hookline=None):
        """Builds the plugin in `app_dir` (module `app` by default) with
        componentize-py and this SDK, and returns a harness for it."""
        out = out or os.path.join(tempfile.mkdtemp(prefix="hookline-py-"), "plugin.wasm")
        subprocess.run(
            ["componentize-py", "-d", str(WIT), "-w", "call-plugin", "componentize",
             "-p", str(app_dir), "-p", str(SDK), module, "-o", str(out)],
            check=True, capture_output=True,
        )
        return cls(out, hookline)

    def _run(self, script_arg, stdin=None):
        try:
            done = subprocess.run(
                [self.hookline, "plugin", "test", "--json", self.wasm, script_arg],
                input=stdin, capture_output=True, text=True,
            )
        except FileNotFoundError as e:
            raise HarnessError(f"cannot run {self.hookline}: install hookline or set HOOKLINE") from e
        lines = [json.loads(l) for l in done.stdout.splitlines() if l.startswith("{")]
        if not lines:
            raise HarnessError(done.stderr.strip())
        r = lines[0]
        return Report(r["passed"], r.get("diff"), r["verbs"], r["path"], r["kv"],
                      r["outcome"], r["logs"])

    def run(self, script):
        """Runs one script given as TOML text."""
        return self._run("-", stdin=script)

    def run_file(self, path):
        return self._run(str(path))

    def assert_scripts_pass(self, directory):
        """Runs every *.toml script in `directory`; raises AssertionError
        naming each that failed, with its diff."""
        scripts = sorted(pathlib.Path(directory).glob("*.toml"))
        assert scripts, f"no *.toml scripts in {directory}"
        failed = []
        for s in scripts:
            r = self.run_file(s)
            if not r.passed:
                failed.append(f"{s}:\n{r.diff}  verbs were: {r.verbs}\n  outcome: {r.outcome}")
        assert not failed, "scripts failed:\n" + "\n".join(failed)
