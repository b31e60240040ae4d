//! Supervision: every long-lived task of a running gslbd is on record; a critical one that ends
//! before the daemon is told to stop stops it with an error naming the task (the binary exits
//! 1), and one whose loss leaves answers standing fails `/healthz`, naming it, while DNS keeps
//! answering. Failures are injected as tasks on the running daemon's own task tree.

mod common;

use std::time::Duration;

use common::config::ConfigFile;
use common::kube_api::FakeApi;
use common::*;
use gslbd::app::App;
use gslbd::tasks::OnEnd;
use hickory_proto::rr::RecordType;

async fn app_with_admin() -> TestServer {
    let mut config = ConfigFile::base();
    config.server.admin = Some("127.0.0.1:0".into());
    start_config(&config).await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_long_lived_task_is_supervised() {
    let keys = common::cluster::keys();
    let api = FakeApi::start("127.0.0.1").await;
    let mut config = common::kube_cluster::config(&api, 9);
    config.gossip = Some(keys.gossip(0, &["eu", "us"], "127.0.0.1:0", &[]));
    let server = start_config(&config).await;
    let supervised: Vec<String> = server
        .app
        .tasks()
        .supervised()
        .iter()
        .map(ToString::to_string)
        .collect();
    let dns = format!("dns udp {}", server.addr);
    let tcp = format!("dns tcp {}", server.addr);
    for task in [
        "state owner",
        "probe scheduler",
        "gossip receive",
        "gossip publish",
        "admin endpoint",
        "kubernetes discovery",
        "kubernetes watch Ingress",
        "kubernetes watch EndpointSlice",
        &dns,
        &tcp,
    ] {
        assert!(
            supervised.iter().any(|s| s == task),
            "{task} in {supervised:?}"
        );
    }
    server.app.shutdown().await;
    api.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_critical_task_that_ends_stops_the_daemon_naming_it() {
    for panics in [false, true] {
        let server = app_with_admin().await;
        let addr = server.addr;
        let app: App = server.app;
        app.tasks().supervise("injected", OnEnd::Exit, async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(!panics, "an injected panic");
        });
        let ended = app
            .run(std::future::pending(), futures::stream::pending())
            .await;
        let failed = ended.expect_err("the daemon stops on its own");
        assert_eq!(failed.0, "injected", "panics: {panics}");
        let packet = bytes(&query("app.gslb.example.com", RecordType::A));
        assert_eq!(
            udp_raw_wait(addr, &packet, Duration::from_millis(300)),
            None,
            "stopped: nothing answers"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_whose_loss_leaves_answers_standing_fails_healthz() {
    let server = app_with_admin().await;
    let admin = server.app.admin_addr().expect("admin");
    assert_eq!(http_get(admin, "/healthz"), (200, "ok\n".to_string()));
    server
        .app
        .tasks()
        .supervise("kubernetes watch Injected", OnEnd::FailHealth, async {
            panic!("an injected panic");
        });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while http_get(admin, "/healthz").0 == 200 {
        assert!(std::time::Instant::now() < deadline, "/healthz still ok");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        http_get(admin, "/healthz"),
        (503, "stopped: kubernetes watch Injected\n".to_string())
    );
    assert_eq!(
        sorted_answer(server.addr, "app.gslb.example.com"),
        ["192.0.2.1"],
        "DNS keeps answering"
    );
    server.app.shutdown().await;
}
