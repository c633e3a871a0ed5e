//! A headless Chromium for one test: its own chromedriver on a free port,
//! killed when the test ends, and the few moves a test makes with it.

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use retrain_testkit::process::free_port;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian puts the driver.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A browser session and the driver process behind it.
pub struct Browser {
    client: Client,
    driver: Child,
    base: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium that opens pages of the
    /// service at `base` (`http://127.0.0.1:port`).
    pub async fn open(base: &str) -> Self {
        let port = free_port();
        // Its own process group, so the browsers it starts end with it.
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMEDRIVER} does not start ({e}): run scripts/test, which installs it"));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--window-size=1280,900"]}),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no WebDriver session on {url}: {e}"),
            }
        };
        Self {
            client,
            driver,
            base: base.to_owned(),
        }
    }

    /// Opens `path` of the service.
    pub async fn visit(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    /// The path (and query) of the page the browser shows.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
    }

    pub async fn all(&self, css: &str) -> Vec<Element> {
        self.client.find_all(Locator::Css(css)).await.unwrap()
    }

    /// The text of the first element `css` matches.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// The text content of the first element `css` matches, shown or not
    /// (WebDriver's text of an SVG element can be empty).
    pub async fn content(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("textContent")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// The texts of every element `css` matches, in page order.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for element in self.all(css).await {
            out.push(element.text().await.unwrap());
        }
        out
    }

    /// An attribute of every element `css` matches, in page order.
    pub async fn attrs(&self, css: &str, attribute: &str) -> Vec<String> {
        let mut out = Vec::new();
        for element in self.all(css).await {
            out.push(element.attr(attribute).await.unwrap().unwrap_or_default());
        }
        out
    }

    /// Whether anything on the page matches `css`.
    pub async fn has(&self, css: &str) -> bool {
        !self.all(css).await.is_empty()
    }

    /// Types `fields` (name, value) into the form `css` matches (opening
    /// its `<details>` if it is folded), submits it, and waits for the next
    /// page.
    pub async fn submit(&self, css: &str, fields: &[(&str, &str)]) {
        // Folded forms (in <details>) take no typing until unfolded.
        self.client
            .execute(
                "document.querySelectorAll('details').forEach(d => d.open = true)",
                vec![],
            )
            .await
            .unwrap();
        let form = self.find(css).await;
        for (name, value) in fields {
            let field = form.find(Locator::Css(&format!("[name='{name}']"))).await.unwrap();
            if field.tag_name().await.unwrap() == "select" {
                field.select_by_value(value).await.unwrap();
            } else {
                field.clear().await.unwrap();
                field.send_keys(value).await.unwrap();
            }
        }
        let before = self.client.find(Locator::Css("html")).await.unwrap();
        form.find(Locator::Css("button[type='submit']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // The old page's root goes stale once the next page has loaded.
        let deadline = Instant::now() + Duration::from_secs(20);
        while before.tag_name().await.is_ok() {
            assert!(Instant::now() < deadline, "{css} did not lead to another page");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The width the page `path` takes and the width it is shown in, in a
    /// window `width` pixels wide (a page wider than its viewport scrolls
    /// sideways).
    pub async fn widths_at(&self, width: u32, path: &str) -> (u64, u64) {
        self.client.set_window_size(width, 800).await.unwrap();
        self.visit(path).await;
        let measure = "const root = document.documentElement; return [root.scrollWidth, root.clientWidth]";
        let widths = self.client.execute(measure, vec![]).await.unwrap();
        self.client.set_window_size(1280, 900).await.unwrap();
        (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap())
    }

    /// Saves the whole page as `<name>.png` in `RETRAIN_SCREENSHOTS_DIR`,
    /// else in the target directory's `screenshots/` (a test run leaves
    /// the committed ones alone; `RETRAIN_SCREENSHOTS_DIR=docs/screenshots`
    /// refreshes the README's).
    pub async fn screenshot(&self, name: &str) {
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight", vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(900);
        self.client
            .set_window_size(1280, u32::try_from(height.clamp(600, 6000)).unwrap() + 140)
            .await
            .unwrap();
        let png = self.client.screenshot().await.unwrap();
        let dir = std::env::var_os("RETRAIN_SCREENSHOTS_DIR").map_or_else(
            || std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots"),
            |dir| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir),
        );
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
        self.client.set_window_size(1280, 900).await.unwrap();
    }

    /// Ends the session and the driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.kill();
    }

    /// Kills the driver's process group: the driver and every browser
    /// process it started.
    fn kill(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that panics never reaches close(): the driver and its
        // browser must not outlive it.
        if matches!(self.driver.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}
