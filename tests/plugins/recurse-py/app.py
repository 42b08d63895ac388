"""A Python plugin that recurses without end once answered (the sandbox
test). The interpreter's recursion limit is lifted and the recursion goes
through C (json encoding of a deeply nested list) so it reaches the
WebAssembly stack; the guest's stack limit (or Python's own guard) must end
it, never the node."""

import json
import sys

import wit_world
from wit_world.imports import data, media

import hookline


def deep(n):
    return deep(n + 1) + 1


class WitWorld(wit_world.WitWorld):
    def manifest(self):
        return hookline.manifest("recurse-py", "1.0.0")

    def handle_call(self, info):
        media.answer()
        data.mark("recurse-py:start")
        sys.setrecursionlimit(10_000_000)
        nested = []
        for _ in range(1_000_000):
            nested = [nested]
        try:
            json.dumps(nested)
        except RecursionError:
            data.mark("recurse-py:c-recursion-refused")
        deep(0)
