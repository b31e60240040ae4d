//! `gslbd demo` as a user runs it: three regions answer, and SIGTERM stops it promptly even
//! while its standard input stays open (no line ever arrives). Its addresses are fixed
//! (127.0.10.1 and the like, README "Run it").

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[test]
fn sigterm_stops_the_demo_with_stdin_left_open() {
    let mut demo = Command::new(env!("CARGO_BIN_EXE_gslbd"))
        .arg("demo")
        .env("GSLBD_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the demo");
    let _stdin = demo.stdin.take().expect("stdin piped");
    let eu = "127.0.10.1:5353".parse().expect("address");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if common::udp_raw_wait(
            eu,
            &common::bytes(&common::query(
                "app.gslb.example.com",
                hickory_proto::rr::RecordType::A,
            )),
            Duration::from_millis(200),
        )
        .is_some()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the demo never answered");
        assert!(
            demo.try_wait().expect("wait").is_none(),
            "the demo exited early"
        );
    }
    let pid = Pid::from_raw(demo.id() as i32);
    kill(pid, Signal::SIGTERM).expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = demo.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = demo.kill();
            panic!("the demo still runs after SIGTERM with stdin open");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
