// A Hookline plugin in C: answers, offers a one-key menu, notes the key in
// the call record, plays the department's prompt and hangs up.
// Build: plugin-sdk/c/build-plugin.sh hello-c.wasm plugins/hello-c/hello.c
#include <stdio.h>

#include "hookline.h"

void exports_call_plugin_manifest(call_plugin_manifest_t *ret) {
  hl_manifest(ret, "hello-c", "1.0.0");
}

bool exports_call_plugin_handle_call(call_plugin_call_info_t *info, call_plugin_string_t *err) {
  (void)info;
  hookline_call_media_call_error_t e;
  hookline_call_routing_call_error_t re;
  hl_mark("lang:c");
  if (!hl_answer(&e)) return true;  // the caller is gone: nothing to do
  int key = hl_menu("main_menu", "12", 2, 5000, &e);
  if (key < 0) return true;
  char step[32];
  snprintf(step, sizeof step, "c:digit:%c", key ? key : '-');
  hl_mark(step);
  if (!hl_play_prompt(key == '1' ? "sales" : key == '2' ? "support" : "operator", false, &e)) return true;
  if (!hl_hangup(&re)) {
    call_plugin_string_dup(err, "hangup failed");
    return false;
  }
  return true;
}
