//! Conference participants per core: callers meet in rooms of `--room` (each
//! group dials its own room number); every member's audio is decoded, each
//! room mixed once per 20 ms, and every member gets its own mix (the room
//! minus itself) encoded and sent. Held together while node CPU is sampled.
//!
//! `cargo bench -p hookline-benches --bench conference_load -- --calls 600 --room 5 --seconds 15`
//! Last line: `bench=conference participants=N rooms=R room_size=K cpu_pct=.. participants_per_core=.. ...`

fn main() -> anyhow::Result<()> {
    let calls = hookline_benches::arg("--calls", 600) as usize;
    let room = hookline_benches::arg("--room", 5).max(2) as usize;
    let seconds = hookline_benches::arg("--seconds", 15);
    let cps = hookline_benches::arg("--cps", 150) as u32;
    // Room numbers conf0, conf1, ...: the plugin names each room after its number.
    let routes = |_agent_port: u16| {
        "[[routes]]\nnumber = \"conf*\"\nplugin = \"conference\"\nconfig = { greeting = \"\" }\n"
            .to_string()
    };
    let (b, node) =
        hookline_benches::bridged::run_scenario(routes, "conf", calls, seconds, cps, None, room)?;
    let r = &b.report;
    // Who joined a room, from the call records (written as calls end).
    std::thread::sleep(std::time::Duration::from_secs(2));
    let records = node.calls_limit(calls + 10)?;
    let mut rooms: Vec<String> = records
        .iter()
        .flat_map(hookline_tests::path_of)
        .filter(|s| s.starts_with("conference:"))
        .collect();
    let joined = rooms.len();
    rooms.sort_unstable();
    rooms.dedup();
    let rooms = rooms.len();
    // Mixed audio each member got in the window, against 50 packets a second.
    let mix_pct = r.rtp_received as f64 / (joined.max(1) as f64 * b.held_s * 50.0) * 100.0;
    // Per member who joined a room (a caller refused at the door costs little).
    let per_core = b.per_core(joined);
    let rss_per = b.rss_mib_each(joined);
    println!(
        "{joined} of {} participants joined {rooms} rooms, {mix_pct:.1} % of their mix packets received;\n\
         {} of {} calls for {:.1} s; node CPU {:.1} %, {per_core:.0} participants per core, \
         {rss_per:.3} MiB each, loss {:.3} %, late {:.3} %",
        r.answered,
        r.answered,
        r.attempted,
        b.held_s,
        b.cpu_pct,
        b.lost_pct(),
        b.late_pct()
    );
    println!(
        "bench=conference participants={} joined={joined} rooms={rooms} room_size={room} mix_received_pct={mix_pct:.1} cpu_pct={:.1} participants_per_core={per_core:.0} \
         rss_mib_per_participant={rss_per:.3} {}",
        r.answered,
        b.cpu_pct,
        b.media_fields()
    );
    Ok(())
}
