/*
 * Testing a Hookline plugin from a C test program, with no phone and no node:
 * scripted calls (the TOML of plugin-sdk/README.md, from a file or a string)
 * run against the plugin's component through `hookline plugin test --json`,
 * so a script is checked by the node's own rules. Host-side, POSIX; include
 * it in exactly one test program.
 *
 *     #include "hl_test.h"
 *     int main(int argc, char **argv) {
 *         hl_test_report r;
 *         hl_test_run(argv[1], "[[caller]]\nkeys = \"2\"\n", &r);
 *         HL_TEST_CHECK(hl_test_has_verb(&r, "play prompt:support"), &r);
 *         HL_TEST_CHECK(hl_test_dir_passes(argv[1], "tests") == 0, &r);
 *         return hl_test_failures;
 *     }
 *
 * The `hookline` binary is $HOOKLINE if set, else `hookline` on the PATH.
 */
#ifndef HL_TEST_H
#define HL_TEST_H

#include <dirent.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* One scripted call's report: the JSON line `hookline plugin test --json`
 * printed (verbs, path, kv, outcome, logs, diff), and whether it passed. */
typedef struct {
    int passed;     /* 1 passed, 0 failed, -1 did not run (see json: the error) */
    char json[65536];
} hl_test_report;

static int hl_test_failures = 0;

/* Counts and prints a failed check with the report it was about. */
#define HL_TEST_CHECK(cond, report)                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            hl_test_failures++;                                                  \
            fprintf(stderr, "%s:%d: check failed: %s\n  report: %s\n", __FILE__, \
                    __LINE__, #cond, (report)->json);                            \
        }                                                                        \
    } while (0)

/* Runs `hookline plugin test --json WASM SCRIPT_PATH` into `r`. */
static int hl_test_run_file(const char *wasm, const char *script_path, hl_test_report *r) {
    const char *bin = getenv("HOOKLINE") ? getenv("HOOKLINE") : "hookline";
    char *argv[] = {(char *)bin, "plugin", "test", "--json", (char *)wasm,
                    (char *)script_path, NULL};
    int out[2];
    r->passed = -1;
    r->json[0] = 0;
    if (pipe(out) != 0) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    pid_t pid;
    int spawned = posix_spawnp(&pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (spawned != 0) {
        snprintf(r->json, sizeof r->json, "cannot run %s: install hookline or set HOOKLINE", bin);
        close(out[0]);
        return -1;
    }
    size_t n = 0;
    ssize_t got;
    while (n + 1 < sizeof r->json && (got = read(out[0], r->json + n, sizeof r->json - 1 - n)) > 0)
        n += (size_t)got;
    r->json[n] = 0;
    close(out[0]);
    int status;
    waitpid(pid, &status, 0);
    if (r->json[0] != '{') return -1; /* the script or the component was refused: see stderr */
    r->passed = strstr(r->json, "\"passed\":true") != NULL;
    return r->passed;
}

/* Runs a script given as TOML text. */
static int hl_test_run(const char *wasm, const char *script, hl_test_report *r) {
    char path[] = "/tmp/hl-test-XXXXXX";
    int fd = mkstemp(path);
    r->passed = -1;
    if (fd < 0) return -1;
    size_t len = strlen(script);
    int ok = write(fd, script, len) == (ssize_t)len;
    close(fd);
    int passed = ok ? hl_test_run_file(wasm, path, r) : -1;
    unlink(path);
    return passed;
}

/* Whether the plugin issued `verb` (as the README writes verbs: "dial extension:201"). */
static int hl_test_has_verb(const hl_test_report *r, const char *verb) {
    char quoted[512];
    snprintf(quoted, sizeof quoted, "\"%s\"", verb);
    const char *verbs = strstr(r->json, "\"verbs\":[");
    return verbs && strstr(verbs, quoted) != NULL;
}

/* Runs every *.toml script in `dir`; returns how many did not pass (each
 * is printed with its report). */
static int hl_test_dir_passes(const char *wasm, const char *dir) {
    DIR *d = opendir(dir);
    int failed = 0, ran = 0;
    if (!d) {
        fprintf(stderr, "%s: cannot open\n", dir);
        return 1;
    }
    struct dirent *e;
    static hl_test_report r;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".toml") != 0) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ran++;
        if (hl_test_run_file(wasm, path, &r) != 1) {
            failed++;
            fprintf(stderr, "%s failed: %s\n", path, r.json);
        }
    }
    closedir(d);
    return ran == 0 ? 1 : failed;
}

#endif
