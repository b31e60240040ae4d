//! `gslbd status` and `gslbd explain` against running servers: three in-process regions
//! gossiping with real HTTP backends; the real binary asks eu's admin endpoint.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::backends::Mode;
use common::cluster::*;
use common::*;

/// `gslbd ARGS`: exit success, standard output, standard error.
fn gslbd(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gslbd"))
        .args(args)
        .output()
        .expect("run gslbd");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn admin(cluster: &Cluster) -> SocketAddr {
    cluster.node(0).app.admin_addr().expect("admin endpoint")
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_explain_print_the_view_and_exit_by_health() {
    let cluster = Cluster::start_with(88, |config| {
        config.server.admin = Some("127.0.0.1:0".into());
    })
    .await;
    let all: Vec<String> = (0..3).map(|r| cluster.addr(r)).collect();
    for i in 0..3 {
        wait_for_answer(
            cluster.node(i).dns,
            "api.gslb.example.com",
            PATIENCE,
            |got| got == all,
        )
        .await;
    }
    let url = format!("http://{}", admin(&cluster));

    // Every region healthy (each region's probes have spoken, and eu heard them): exit 0, a
    // line per service with a cell per region.
    let deadline = Instant::now() + PATIENCE;
    let table = loop {
        let (ok, table, stderr) = gslbd(&["status", "--admin", &url]);
        let app_healthy = table
            .lines()
            .filter(|l| l.starts_with("app."))
            .any(|l| l.split_whitespace().filter(|&w| w == "healthy").count() == 3);
        if ok && app_healthy {
            break table;
        }
        assert!(
            Instant::now() < deadline,
            "status never 0:\n{table}{stderr}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(table.contains("SERVICE"), "{table}");
    let header = table
        .lines()
        .find(|l| l.starts_with("SERVICE"))
        .expect("header");
    for column in ["STRATEGY", "EU", "US", "AP", "ANSWERED FROM"] {
        assert!(header.contains(column), "{header}");
    }
    let line = |table: &str, service: &str| -> String {
        table
            .lines()
            .find(|l| l.starts_with(service))
            .unwrap_or_else(|| panic!("no line for {service}:\n{table}"))
            .to_string()
    };
    let app = line(&table, "app.gslb.example.com");
    assert_eq!(app.matches("healthy").count(), 3, "{app}");
    assert!(
        app.trim_end().ends_with("eu"),
        "failover answers from eu: {app}"
    );
    assert!(
        line(&table, "api.gslb.example.com").ends_with("eu,us,ap"),
        "{table}"
    );
    assert!(!table.contains('\x1b'), "no colour off a terminal");

    let (ok, json, _) = gslbd(&[
        "status",
        "--admin",
        &admin(&cluster).to_string(),
        "-o",
        "json",
    ]);
    assert!(ok);
    let state: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(state["services"].as_array().map(Vec::len), Some(2));

    // explain, what if eu were down: us answers app.
    let (ok, text, stderr) = gslbd(&[
        "explain",
        "app",
        "--client",
        "198.51.100.7",
        "--down",
        "eu",
        "--admin",
        &url,
    ]);
    assert!(ok, "{stderr}");
    assert!(text.contains("what if eu were down"), "{text}");
    let answer = text
        .lines()
        .find(|l| l.starts_with("answer:"))
        .expect("answer line");
    assert!(answer.contains(&cluster.addr(1)), "{text}");
    assert!(
        text.contains("marked down by the what-if question"),
        "{text}"
    );
    let (ok, _, stderr) = gslbd(&[
        "explain",
        "app",
        "--client",
        "198.51.100.7",
        "--down",
        "mars",
        "--admin",
        &url,
    ]);
    assert!(!ok && stderr.contains("unknown region"), "{stderr}");

    // Every backend fails: no service has a healthy answer, exit 1.
    for backend in &cluster.backends {
        backend.set(Mode::Status(500, "down"));
    }
    let deadline = Instant::now() + PATIENCE;
    let table = loop {
        let (ok, table, _) = gslbd(&["status", "--admin", &url]);
        if !ok
            && line(&table, "app.gslb.example.com")
                .matches("unhealthy")
                .count()
                == 3
        {
            break table;
        }
        assert!(
            Instant::now() < deadline,
            "status never 1 with every region down:\n{table}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        line(&table, "app.gslb.example.com").ends_with("none (all down)"),
        "{table}"
    );
    cluster.shutdown().await;
}
