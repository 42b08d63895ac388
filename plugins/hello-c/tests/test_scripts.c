/* The C sample's own tests: its scripts and two written here, with no phone.
 *   cc -o test_scripts plugins/hello-c/tests/test_scripts.c -Iplugin-sdk/c
 *   HOOKLINE=target/debug/hookline ./test_scripts hello-c.wasm plugins/hello-c/tests
 */
#include "hl_test.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s PLUGIN.wasm SCRIPTS_DIR\n", argv[0]);
        return 2;
    }
    const char *wasm = argv[1];
    hl_test_report r;

    HL_TEST_CHECK(hl_test_dir_passes(wasm, argv[2]) == 0, &r);

    hl_test_run(wasm, "[[caller]]\nkeys = \"1\"\n", &r);
    HL_TEST_CHECK(r.passed == 1, &r);
    HL_TEST_CHECK(hl_test_has_verb(&r, "play prompt:sales"), &r);
    HL_TEST_CHECK(!hl_test_has_verb(&r, "dial extension:201"), &r);

    /* A wrong expectation is a failed report with the diff in it. */
    hl_test_run(wasm, "[[caller]]\nkeys = \"2\"\n[expect]\nverbs = [\"answer\", \"reject 486\"]\n", &r);
    HL_TEST_CHECK(r.passed == 0, &r);
    HL_TEST_CHECK(strstr(r.json, "reject 486") != NULL, &r);

    if (hl_test_failures == 0) printf("ok: hello-c scripts\n");
    return hl_test_failures;
}
