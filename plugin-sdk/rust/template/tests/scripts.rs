//! `cargo test` runs the plugin against the scripted calls in this folder
//! (`*.toml`, see the SDK README) and one written here, with no phone.

use hookline_sdk::testing::Harness;

fn harness() -> Harness {
    Harness::for_crate(env!("CARGO_MANIFEST_DIR")).expect("the plugin builds")
}

#[test]
fn the_scripts_in_tests_pass() {
    harness().assert_scripts_pass(concat!(env!("CARGO_MANIFEST_DIR"), "/tests"));
}

#[test]
fn a_silent_caller_is_not_put_through() {
    let report = harness()
        .run(
            r#"
            [call.config]
            greeting = "Hello."
            agent = "201"
            [[caller]]
            silence = true
            [[caller]]
            silence = true
            "#,
        )
        .unwrap();
    assert!(
        !report.verbs.iter().any(|v| v.starts_with("dial")),
        "{:?}",
        report.verbs
    );
    assert_eq!(report.outcome, "ok");
}
