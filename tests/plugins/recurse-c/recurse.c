// A C plugin that recurses without end once answered (the sandbox test):
// the guest's stack limit must trap it, never the node.
// Build: plugin-sdk/c/build-plugin.sh recurse-c.wasm tests/plugins/recurse-c/recurse.c
#include "hookline.h"

static volatile unsigned depth_seen;

static unsigned deep(unsigned n) {
  volatile char frame[256];
  frame[0] = (char)n;
  depth_seen = n;
  if (depth_seen == 0xffffffffu) return 0;  // never: the stack ends first
  return deep(n + 1) + frame[0];
}

void exports_call_plugin_manifest(call_plugin_manifest_t *ret) {
  hl_manifest(ret, "recurse-c", "1.0.0");
}

bool exports_call_plugin_handle_call(call_plugin_call_info_t *info, call_plugin_string_t *err) {
  (void)info;
  (void)err;
  hookline_call_media_call_error_t e;
  if (!hl_answer(&e)) return true;
  hl_mark("recurse-c:start");
  return deep(0) == 42;
}
