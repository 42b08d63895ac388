// A Hookline plugin in C: answers, offers a one-key menu, notes the key in
// the call record, plays the department's prompt and hangs up; 3 rings
// extension 201 (goodbye spoken if nobody answers), 9 hands the call to
// voicemail. Tests: plugins/hello-c/tests/*.toml (hookline plugin test).
// Build: plugin-sdk/c/build-plugin.sh hello-c.wasm plugins/hello-c/hello.c
#include <stdio.h>

#include "hookline.h"

void exports_call_plugin_manifest(call_plugin_manifest_t *ret) {
  hl_manifest(ret, "hello-c", "1.0.0");
  hl_manifest_need(ret, "hand-over:voicemail");
}

bool exports_call_plugin_handle_call(call_plugin_call_info_t *info, call_plugin_string_t *err) {
  (void)info;
  hookline_call_media_call_error_t e;
  hookline_call_routing_call_error_t re;
  hl_mark("lang:c");
  if (!hl_answer(&e)) return true;  // the caller is gone: nothing to do
  int key = hl_menu("main_menu", "1239", 2, 5000, &e);
  if (key < 0) return true;
  char step[32];
  snprintf(step, sizeof step, "c:digit:%c", key ? key : '-');
  hl_mark(step);
  if (key == '3') {
    int status = hl_dial_extension("201", 20000, &re);
    if (status < 0) return true;
    if (status != HOOKLINE_CALL_ROUTING_DIAL_STATUS_COMPLETED && !hl_say("Nobody answered. Goodbye.", false, &e))
      return true;
  } else if (key == '9') {
    int handed = hl_hand_over("voicemail", "{\"mailbox\": \"c\"}", &re);
    if (handed < 0) return true;
    hl_mark(handed ? "c:voicemail-ok" : "c:voicemail-failed");
    return true;
  } else if (!hl_play_prompt(key == '1' ? "sales" : key == '2' ? "support" : "operator", false, &e)) {
    return true;
  }
  if (!hl_hangup(&re)) {
    call_plugin_string_dup(err, "hangup failed");
    return false;
  }
  return true;
}
