// Hookline C SDK: small helpers over the bindings `wit-bindgen c` generates
// from plugin-sdk/wit (call_plugin.h). Every verb of the host API is there as
// `hookline_call_<interface>_<verb>`; these helpers cover the common cases
// with C strings. A plugin defines `exports_call_plugin_manifest` and
// `exports_call_plugin_handle_call`.
#ifndef HOOKLINE_H
#define HOOKLINE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "call_plugin.h"

#define HL_API_VERSION "0.1.1"

// A component-model string that borrows a C string (no copy, no free).
static inline call_plugin_string_t hl_str(const char *s) {
  call_plugin_string_t r;
  call_plugin_string_set(&r, s);
  return r;
}

// Fills a manifest with a name and version, no capabilities, 16 MiB, 200 ms CPU.
static inline void hl_manifest(call_plugin_manifest_t *m, const char *name, const char *version) {
  memset(m, 0, sizeof *m);
  call_plugin_string_dup(&m->name, name);
  call_plugin_string_dup(&m->version, version);
  call_plugin_string_dup(&m->api_version, HL_API_VERSION);
  m->memory_mib = 16;
  m->cpu_ms = 200;
}

// Each helper returns true on success; on failure `err` says why (hung-up, ...).
static inline bool hl_answer(hookline_call_media_call_error_t *err) {
  return hookline_call_media_answer(err);
}

static inline bool hl_hangup(hookline_call_routing_call_error_t *err) {
  return hookline_call_routing_hangup(err);
}

static inline void hl_mark(const char *step) {
  call_plugin_string_t s = hl_str(step);
  hookline_call_data_mark(&s);
}

static inline void hl_log(const char *message) {
  call_plugin_string_t s = hl_str(message);
  hookline_call_data_log(HOOKLINE_CALL_DATA_LOG_LEVEL_INFO, &s);
}

// Plays one catalog prompt.
static inline bool hl_play_prompt(const char *id, bool barge_in, hookline_call_media_call_error_t *err) {
  hookline_call_media_play_item_t item;
  item.tag = HOOKLINE_CALL_MEDIA_PLAY_ITEM_PROMPT;
  item.val.prompt = hl_str(id);
  hookline_call_media_list_play_item_t items = {&item, 1};
  hookline_call_media_play_end_t end;
  return hookline_call_media_play(&items, barge_in, &end, err);
}

// Plays a prompt, then waits for one key from `valid` (e.g. "123"), with
// `attempts` tries. Returns the key, or 0 when none was valid; -1 on error.
static inline int hl_menu(const char *prompt, const char *valid, uint32_t attempts, uint32_t timeout_ms,
                          hookline_call_media_call_error_t *err) {
  hookline_call_media_play_item_t item;
  item.tag = HOOKLINE_CALL_MEDIA_PLAY_ITEM_PROMPT;
  item.val.prompt = hl_str(prompt);
  size_t n = strlen(valid);
  call_plugin_string_t keys[16];
  char one[16][2];
  if (n > 16) n = 16;
  for (size_t i = 0; i < n; i++) {
    one[i][0] = valid[i];
    one[i][1] = 0;
    keys[i] = hl_str(one[i]);
  }
  hookline_call_media_collect_options_t o;
  memset(&o, 0, sizeof o);
  o.prompts.ptr = &item;
  o.prompts.len = 1;
  o.min_digits = 1;
  o.max_digits = 1;
  o.first_digit_timeout_ms = timeout_ms;
  o.inter_digit_timeout_ms = timeout_ms;
  o.attempts = attempts;
  o.valid.ptr = keys;
  o.valid.len = n;
  hookline_call_media_collected_t got;
  if (!hookline_call_media_collect_digits(&o, &got, err)) return -1;
  int key = (got.valid && got.digits.len == 1) ? got.digits.ptr[0] : 0;
  hookline_call_media_collected_free(&got);
  return key;
}

#endif
