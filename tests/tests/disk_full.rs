//! A full disk: the node's data directory is a small tmpfs (mounting it
//! needs root, as CI runs). Nearly full, a caller who wants to leave a
//! message is told the node cannot take one and is hung up, nothing is
//! listed and the log says why, while IVR calls go on. Completely full, IVR
//! calls are still answered and the node stays up. With space again,
//! messages are taken as before and the database is whole.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};
use hookline_tests::{audible_windows, heard_between, path_of, NodeSpec, RtpSink, SipUa, TestNode};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size_mib: u32) -> Result<Tmpfs> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir)
            .output()?;
        if !out.status.success() {
            bail!(
                "mounting a tmpfs for the data directory needs root: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }

    /// Bytes free.
    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.0)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap()
    }

    /// Fills it with a file until `leave` bytes are free.
    fn fill_to(&self, leave: u64) {
        let path = self.0.join("filler");
        let have = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let size = (have + self.free()).saturating_sub(leave);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        f.set_len(0).unwrap();
        // Written, not sparse: tmpfs counts only pages that hold data.
        use std::io::Write;
        let mut w = std::io::BufWriter::new(f);
        let block = vec![1u8; 1 << 16];
        let mut left = size;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            if w.write_all(&block[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
        let _ = w.flush();
    }

    fn empty(&self) {
        let _ = std::fs::remove_file(self.0.join("filler"));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

const ROUTES: &str = r#"
[[routes]]
number = "full-box"
plugin = "voicemail"
config = { greeting_text = "Leave a message.", mailbox = "full", max_ms = 4000, silence_ms = 60000 }
"#;

/// An IVR call (the sample's menu on 100): answered, it hears the menu.
fn ivr_call(node: &TestNode, id: &str) {
    let ua = SipUa::new(node.sip).unwrap();
    let sink = RtpSink::bind().unwrap();
    let tag = ua.call(id, "100", sink.port).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    ua.request("BYE", id, &tag, 2, "", "").unwrap();
    ua.expect(id, "SIP/2.0 200", Duration::from_secs(5))
        .unwrap();
    let heard = sink.finish();
    // Audible audio, not just packets (silence keeps a call's stream going).
    let menu = audible_windows(&heard_between(&heard, 0.0, 60.0), 8000);
    assert!(menu >= 8, "{id}: {menu} audible 100 ms windows of the menu");
}

/// A caller who wants to leave a message; the call's record.
fn leave_message(node: &TestNode, id: &str) -> serde_json::Value {
    let ua = SipUa::new(node.sip).unwrap();
    ua.call(id, "full-box", 9).unwrap();
    node.wait_for_call(Duration::from_secs(30), |c| {
        c["id"] == id && c["hangup_cause"].is_string()
    })
    .unwrap()
}

#[test]
fn a_full_disk_refuses_messages_cleanly_and_ivr_calls_go_on() {
    let mounted: RefCell<Option<Tmpfs>> = RefCell::new(None);
    let prepare = |dir: &Path| -> Result<()> {
        *mounted.borrow_mut() = Some(Tmpfs::mount(dir, 96)?);
        Ok(())
    };
    let node = TestNode::start(NodeSpec {
        extra_routes: ROUTES,
        node_section: Some("min_free_disk_mib = 16"),
        prepare_data: Some(&prepare),
        ..NodeSpec::default()
    })
    .unwrap();
    let disk = mounted.borrow_mut().take().unwrap();

    // Nearly full: 8 MiB free, under the node's 16 MiB floor.
    disk.fill_to(8 << 20);
    let refused = leave_message(&node, "no-room");
    let path = path_of(&refused);
    assert!(path.iter().any(|s| s == "voicemail:refused"), "{refused:#}");
    assert_eq!(refused["hangup_cause"], "plugin-hangup", "{refused:#}");
    assert!(
        node.recordings().unwrap().is_empty(),
        "a refused message was listed"
    );
    assert!(
        node.logs().contains("recording refused: disk nearly full"),
        "{}",
        node.logs()
    );
    ivr_call(&node, "ivr-nearly-full");

    // Completely full: calls are still answered, the node stays up.
    disk.fill_to(0);
    ivr_call(&node, "ivr-full");
    let ua = SipUa::new(node.sip).unwrap();
    let tag = ua.call("vm-full", "full-box", 9).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let _ = ua.request("BYE", "vm-full", &tag, 2, "", "");
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        hookline_tests::http_get(node.http, "/health", None).is_ok(),
        "the node died on a full disk:\n{}",
        node.logs()
    );

    // Space again: messages are taken, and what was listed is whole.
    disk.empty();
    let kept = leave_message(&node, "room-again");
    assert!(
        path_of(&kept)
            .iter()
            .any(|s| s.starts_with("voicemail:full:")),
        "{kept:#}"
    );
    let listed = node.recordings().unwrap();
    assert!(
        listed
            .iter()
            .any(|r| r["state"] == "done" && r["duration_ms"].as_u64() >= Some(3000)),
        "{listed:#?}"
    );
    assert!(
        listed.iter().all(|r| r["state"] != "recording"),
        "a recording left half-listed: {listed:#?}"
    );
    let calls = node.calls().unwrap();
    assert!(calls.iter().any(|c| c["id"] == "no-room"), "{calls:#?}");
    assert!(!node.logs().contains("panicked"), "{}", node.logs());
    drop(node);
    drop(disk);
}
