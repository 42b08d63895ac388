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

#define HL_API_VERSION "0.1.2"

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

// Adds a capability the plugin needs: "kv", "recording", "speech", "history",
// "http:crm.example.com[:port]", "hand-over:voicemail", or a quota ask such
// as "quota:kv-bytes=1048576". The node refuses a plugin it did not grant.
static inline void hl_manifest_need(call_plugin_manifest_t *m, const char *capability) {
  size_t n = m->needs.len;
  call_plugin_string_t *p = (call_plugin_string_t *)realloc(m->needs.ptr, (n + 1) * sizeof *p);
  if (!p) abort();
  call_plugin_string_dup(&p[n], capability);
  m->needs.ptr = p;
  m->needs.len = n + 1;
}

// Declares one key of the route config the plugin reads; `kind` is "string",
// "number", "bool", "list", "object" or "any". The node refuses route
// configs with keys the plugin does not declare (once it declares any).
static inline void hl_manifest_config(call_plugin_manifest_t *m, const char *name, const char *kind,
                                      bool required, const char *description) {
  size_t n = m->config_schema.len;
  hookline_call_types_config_field_t *p =
      (hookline_call_types_config_field_t *)realloc(m->config_schema.ptr, (n + 1) * sizeof *p);
  if (!p) abort();
  call_plugin_string_dup(&p[n].name, name);
  call_plugin_string_dup(&p[n].kind, kind);
  p[n].required = required;
  call_plugin_string_dup(&p[n].description, description);
  m->config_schema.ptr = p;
  m->config_schema.len = n + 1;
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

// Speaks `text` with the node's speech synthesizer, in the call's language.
static inline bool hl_say(const char *text, bool barge_in, hookline_call_media_call_error_t *err) {
  hookline_call_media_play_item_t item;
  item.tag = HOOKLINE_CALL_MEDIA_PLAY_ITEM_SAY;
  item.val.say.text = hl_str(text);
  item.val.say.language.is_some = false;
  hookline_call_media_list_play_item_t items = {&item, 1};
  hookline_call_media_play_end_t end;
  return hookline_call_media_play(&items, barge_in, &end, err);
}

static inline int hl_dial_one(uint8_t tag, const char *to, uint32_t timeout_ms,
                              hookline_call_routing_call_error_t *err) {
  hookline_call_routing_dial_target_t target;
  target.tag = tag;
  if (tag == HOOKLINE_CALL_ROUTING_DIAL_TARGET_EXTENSION) target.val.extension = hl_str(to);
  else target.val.number = hl_str(to);
  hookline_call_routing_dial_options_t o;
  memset(&o, 0, sizeof o);
  o.targets.ptr = &target;
  o.targets.len = 1;
  o.strategy = HOOKLINE_CALL_ROUTING_RING_STRATEGY_SIMULTANEOUS;
  o.timeout_ms = timeout_ms;
  hookline_call_routing_dial_result_t got;
  if (!hookline_call_routing_dial(&o, &got, err)) return -1;
  return got.status;
}

// Rings an extension (every phone it registered) for `timeout_ms` and, when
// answered, connects the caller until one hangs up. Returns the outcome
// (HOOKLINE_CALL_ROUTING_DIAL_STATUS_COMPLETED, _NO_ANSWER, _BUSY, _FAILED),
// or -1 on error (`err`).
static inline int hl_dial_extension(const char *extension, uint32_t timeout_ms,
                                    hookline_call_routing_call_error_t *err) {
  return hl_dial_one(HOOKLINE_CALL_ROUTING_DIAL_TARGET_EXTENSION, extension, timeout_ms, err);
}

// The same for a phone number, out through the node's trunks in order.
static inline int hl_dial_number(const char *number, uint32_t timeout_ms,
                                 hookline_call_routing_call_error_t *err) {
  return hl_dial_one(HOOKLINE_CALL_ROUTING_DIAL_TARGET_NUMBER, number, timeout_ms, err);
}

// Runs another plugin on this call with JSON arguments (needs the grant
// "hand-over:<plugin>"); the call comes back when it returns. Returns 1 when
// it returned ok, 0 when it failed, -1 on error (`err`).
static inline int hl_hand_over(const char *plugin, const char *arguments_json,
                               hookline_call_routing_call_error_t *err) {
  call_plugin_string_t p = hl_str(plugin);
  call_plugin_string_t a = hl_str(arguments_json);
  hookline_call_routing_hand_over_result_t got;
  if (!hookline_call_routing_hand_over(&p, &a, &got, err)) return -1;
  int ok = got.ok ? 1 : 0;
  hookline_call_routing_hand_over_result_free(&got);
  return ok;
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
