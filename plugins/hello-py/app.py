"""A Hookline plugin in Python: a one-key menu, the key noted in the call
record, the department's prompt, hang-up. Built by componentize-py (see
plugin-sdk/python/hookline.py)."""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import data, media, routing

import hookline


class WitWorld(wit_world.WitWorld):
    def manifest(self):
        return hookline.manifest("hello-py", "1.0.0")

    def handle_call(self, info):
        data.mark("lang:python")
        if json.loads(data.config() or "{}").get("crash"):
            # A bug, on purpose: the traceback's last line names it in the
            # call record and the node log.
            return 1 / 0
        try:
            media.answer()
            key = hookline.menu([hookline.prompt("main_menu")], "12", attempts=2)
            data.mark(f"py:digit:{key or '-'}")
            department = {"1": "sales", "2": "support"}.get(key, "operator")
            media.play([hookline.prompt(department)], False)
            routing.hangup()
        except Err as e:
            if not hookline.hung_up(e):
                raise
