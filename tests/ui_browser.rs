//! The `/ui` page in a real browser: Debian's chromium, headless, driven over WebDriver by
//! chromedriver. Three in-process regions gossiping with real backends; the page is eu's. It
//! reads the health matrix, sees a cell turn unhealthy without a reload when eu's backend
//! fails, submits the explain form, and presses drain and undrain, watching DNS answers move.
//! `GSLBD_UPDATE_SCREENSHOT=1` writes the page's screenshot to docs/ui.png (README, "Watch
//! it"); it always goes to target/ui.png.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::backends::Mode;
use common::cluster::*;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};

const APP: &str = "app.gslb.example.com";

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
    /// chromedriver's log, removed with it.
    log: std::path::PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// chromedriver started and listening. The free port is chosen before chromedriver binds it,
/// so another process may take it in between, and a first start after an upgrade can be slow:
/// a chromedriver that exits is started again on another port (three tries), and what it
/// printed goes into the failure.
fn chromedriver() -> Driver {
    let mut exits = Vec::new();
    for _ in 0..3 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::env::temp_dir().join(format!("gslbd-chromedriver-{port}.log"));
        let mut child = Command::new("chromedriver")
            .args([
                format!("--port={port}"),
                "--allowed-ips=127.0.0.1".to_string(),
                format!("--log-path={}", log.display()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (apt-get install chromium chromium-driver)");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(addr).is_ok() {
                return Driver { child, port, log };
            }
            if let Ok(Some(status)) = child.try_wait() {
                let printed = std::fs::read_to_string(&log).unwrap_or_default();
                exits.push(format!("port {port}: {status}\n{printed}"));
                let _ = std::fs::remove_file(&log);
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let printed = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("chromedriver never listened on {port}:\n{printed}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("chromedriver exited three times:\n{}", exits.join("\n"));
}

async fn browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::map::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_string(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1300",
                // Nothing but the page on loopback: no background services, no name resolution.
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps", "--disable-extensions",
                "--disable-domain-reliability", "--disable-client-side-phishing-detection",
                "--no-first-run", "--no-default-browser-check", "--no-pings",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session")
}

/// The matrix cell of `service`'s `region`: its class and text.
async fn cell(client: &Client, service: &str, region: &str) -> (String, String) {
    let selector = format!("tr[data-service=\"{service}.\"] td[data-region=\"{region}\"]");
    let Ok(cell) = client.find(Locator::Css(&selector)).await else {
        return (String::new(), String::new());
    };
    let class = cell.attr("class").await.ok().flatten().unwrap_or_default();
    let text = cell.text().await.unwrap_or_default();
    (class, text)
}

/// Waits until the cell's class is `state`, the page never reloaded (`marker` still set).
async fn until_cell(client: &Client, service: &str, region: &str, state: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (class, text) = cell(client, service, region).await;
        if class == state {
            let marker = client
                .execute("return window.gslbdTestMarker === true;", vec![])
                .await
                .expect("script runs");
            assert_eq!(marker, serde_json::json!(true), "the page reloaded");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{service} {region}: {class} ({text}), not {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs chromium, chromium-driver: run by .ci/run"]
async fn the_page_follows_health_explains_and_drains_in_a_real_browser() {
    let cluster = Cluster::start_with(87, |config| {
        config.server.admin = Some("127.0.0.1:0".into());
    })
    .await;
    let (eu, us) = (cluster.addr(0), cluster.addr(1));
    for i in 0..3 {
        wait_for_answer(cluster.node(i).dns, APP, PATIENCE, |got| {
            got == [eu.clone()]
        })
        .await;
    }
    let admin = cluster.node(0).app.admin_addr().expect("admin endpoint");
    let driver = chromedriver();
    let client = browser(&driver).await;
    client
        .goto(&format!("http://{admin}/ui"))
        .await
        .expect("the page loads");
    client
        .execute("window.gslbdTestMarker = true;", vec![])
        .await
        .expect("script runs");

    // The matrix: every region of app healthy, eu answering.
    for region in ["eu", "us", "ap"] {
        until_cell(&client, APP, region, "healthy").await;
    }
    let from = client
        .find(Locator::Css(&format!(
            "tr[data-service=\"{APP}.\"] td.from"
        )))
        .await
        .expect("answered-from cell")
        .text()
        .await
        .expect("text");
    assert!(from.contains(&eu), "{from}");

    // eu's backend fails: its cell turns unhealthy, without a reload.
    cluster.backends[0].set(Mode::Status(500, "down"));
    until_cell(&client, APP, "eu", "unhealthy").await;
    let (_, text) = cell(&client, APP, "eu").await;
    assert!(text.contains("local probes"), "the reason is shown: {text}");
    let transitions = client
        .find(Locator::Id("transitions"))
        .await
        .expect("transitions table")
        .text()
        .await
        .expect("text");
    assert!(transitions.contains("unhealthy"), "{transitions}");

    // The explain form: eu is down, so us answers.
    let form = client
        .form(Locator::Id("explain"))
        .await
        .expect("the explain form");
    form.set_by_name("name", "app").await.expect("name");
    form.set_by_name("client", "198.51.100.7")
        .await
        .expect("client");
    form.submit().await.expect("submit");
    let answer = client
        .wait()
        .for_element(Locator::Id("explained-answer"))
        .await
        .expect("an explanation")
        .text()
        .await
        .expect("text");
    assert_eq!(answer, us);
    let png = client.screenshot().await.expect("a screenshot");
    let target = concat!(env!("CARGO_MANIFEST_DIR"), "/target/ui.png");
    std::fs::write(target, &png).expect("write target/ui.png");
    if std::env::var_os("GSLBD_UPDATE_SCREENSHOT").is_some() {
        std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ui.png"), &png)
            .expect("write docs/ui.png");
    }

    // eu recovers; then the drain button takes it out of every server's answers over DNS, and
    // undrain puts it back.
    cluster.backends[0].set(Mode::Status(200, "ok"));
    client
        .execute("window.gslbdTestMarker = true;", vec![])
        .await
        .expect("script runs");
    until_cell(&client, APP, "eu", "healthy").await;
    for (control, want) in [("drain", &us), ("undrain", &eu)] {
        client
            .find(Locator::Css(&format!(
                "button[data-control=\"{control}\"][data-region=\"eu\"]"
            )))
            .await
            .expect("the button")
            .click()
            .await
            .expect("click");
        for i in 0..3 {
            wait_for_answer(cluster.node(i).dns, APP, PATIENCE, |got| {
                got == [want.clone()]
            })
            .await;
        }
    }
    until_cell(&client, APP, "eu", "healthy").await;
    let said = client
        .find(Locator::Id("control-result"))
        .await
        .expect("the control's result")
        .text()
        .await
        .expect("text");
    assert!(said.contains("undrained region eu"), "{said}");
    client.close().await.expect("close the browser");
    cluster.shutdown().await;
}
