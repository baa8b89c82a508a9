//! A small typed client of the W3C WebDriver protocol (<https://www.w3.org/TR/webdriver2/>),
//! just enough for the GUI tests: start `chromedriver` on 127.0.0.1, open one headless Chromium
//! session, navigate, find elements by CSS, type, click, read the page, take screenshots.
//!
//! Every command is one HTTP request with a JSON body; the answer is `{"value": ...}`, and on
//! failure `{"value": {"error": "...", "message": "..."}}` (spec §6.6, "Handling errors").

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The key of an element reference in WebDriver JSON (spec §12.1, "web element identifier").
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium flags for a closed network: no GPU, no sandbox (we are root in a container), and
/// no background traffic (updates, sync, QUIC probes) that would only meet refused connections.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
];

/// What went wrong talking to the browser.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP request to chromedriver failed.
    #[error("WebDriver {command}: {error}")]
    Http {
        /// Method and path.
        command: String,
        /// What ureq said.
        error: ureq::Error,
    },
    /// chromedriver answered with a WebDriver error.
    #[error("WebDriver {command}: {error}: {message}")]
    Driver {
        /// Method and path.
        command: String,
        /// The error code, such as `no such element`.
        error: String,
        /// Its message.
        message: String,
    },
    /// The answer was not the JSON the spec describes.
    #[error("WebDriver {command}: unexpected answer {answer}")]
    Answer {
        /// Method and path.
        command: String,
        /// The answer.
        answer: String,
    },
    /// A wait ran out.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    /// A screenshot could not be written.
    #[error("writing {}: {error}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
}

/// A reference to an element of the current page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element(String);

/// A chromedriver process with one Chromium session; both end on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    _profile: tempfile::TempDir,
}

/// The full path of `program` in `PATH`. A missing browser is a failure, never a skip: the
/// message names the Debian package that `make test` installs (`TEST_PACKAGES`).
pub fn require(program: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{program} not found in PATH: install the Debian package {package} (make deps-test does)")
        })
}

impl Browser {
    /// Starts chromedriver on a port the kernel picks and opens a headless Chromium with a
    /// fresh, empty profile.
    pub fn start() -> Browser {
        let chromium = require("chromium", "chromium");
        let chromedriver = require("chromedriver", "chromium-driver");
        let mut driver = Command::new(&chromedriver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", chromedriver.display()));
        // chromedriver has no machine-readable way to tell the port it bound; its start line
        // is "ChromeDriver was started successfully on port 41234."
        let mut lines = BufReader::new(driver.stdout.take().expect("piped stdout")).lines();
        let port = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = driver.kill();
                panic!("chromedriver ended before saying its port");
            };
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest.trim_end_matches('.').trim().to_string();
            }
        };
        // Keep draining its stdout so a chatty driver never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut b = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            agent,
            _profile: profile,
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let v = b
            .command("POST", "/session", Some(caps))
            .expect("new WebDriver session");
        b.session = v["sessionId"]
            .as_str()
            .expect("sessionId in the new-session answer")
            .to_string();
        b
    }

    /// Sends one command; `path` is relative to the session unless it starts with `/session`
    /// itself (new session). Returns the answer's `value`.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Error> {
        let url = if path.starts_with("/session") {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let command = format!("{method} {path}");
        let http = |error| Error::Http {
            command: command.clone(),
            error,
        };
        let mut resp = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or_else(|| json!({})).to_string()),
        }
        .map_err(http)?;
        let text = resp.body_mut().read_to_string().map_err(http)?;
        let answer: Value = serde_json::from_str(&text).map_err(|_| Error::Answer {
            command: command.clone(),
            answer: text.clone(),
        })?;
        let value = answer.get("value").cloned().unwrap_or(Value::Null);
        if resp.status().is_success() {
            return Ok(value);
        }
        Err(Error::Driver {
            command,
            error: value["error"].as_str().unwrap_or("?").to_string(),
            message: value["message"].as_str().unwrap_or("").to_string(),
        })
    }

    /// Loads `url` and waits for its load event (the default page-load strategy "normal").
    pub fn goto(&self, url: &str) -> Result<(), Error> {
        self.command("POST", "/url", Some(json!({ "url": url })))
            .map(drop)
    }

    /// The current page's URL.
    pub fn url(&self) -> Result<String, Error> {
        let v = self.command("GET", "/url", None)?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The current page's title.
    pub fn title(&self) -> Result<String, Error> {
        let v = self.command("GET", "/title", None)?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The first element matching the CSS selector, `None` when there is none.
    pub fn find(&self, css: &str) -> Result<Option<Element>, Error> {
        let body = json!({"using": "css selector", "value": css});
        match self.command("POST", "/element", Some(body)) {
            Ok(v) => element(&v).map(Some).ok_or_else(|| Error::Answer {
                command: format!("find {css}"),
                answer: v.to_string(),
            }),
            Err(Error::Driver { error, .. }) if error == "no such element" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// All elements matching the CSS selector, in document order.
    pub fn find_all(&self, css: &str) -> Result<Vec<Element>, Error> {
        let body = json!({"using": "css selector", "value": css});
        let v = self.command("POST", "/elements", Some(body))?;
        Ok(v.as_array()
            .map(|a| a.iter().filter_map(element).collect())
            .unwrap_or_default())
    }

    /// The first element matching the CSS selector; an error names the selector and the URL.
    pub fn get(&self, css: &str) -> Result<Element, Error> {
        self.find(css)?.ok_or_else(|| Error::Driver {
            command: format!("find {css}"),
            error: "no such element".into(),
            message: format!("on {}", self.url().unwrap_or_default()),
        })
    }

    /// Polls the DOM every 200 ms until an element matches the CSS selector, at most `timeout`.
    /// Polling the live page, not sleeping for a fixed time, so a test waits only as long as
    /// the page needs.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element, Error> {
        let start = Instant::now();
        let mut last = String::from("no match");
        loop {
            // A refreshing page may swap its document between two commands: "stale element"
            // and the like are a reason to look again, not a failure.
            match self.find(css) {
                Ok(Some(e)) => return Ok(e),
                Ok(None) => {}
                Err(e) => last = e.to_string(),
            }
            if start.elapsed() > timeout {
                return Err(Error::Timeout(timeout, format!("{css} (last: {last})")));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Types `text` into an input element.
    pub fn type_into(&self, e: &Element, text: &str) -> Result<(), Error> {
        let path = format!("/element/{}/value", e.0);
        self.command("POST", &path, Some(json!({ "text": text })))
            .map(drop)
    }

    /// Clicks an element (and waits for a navigation it starts).
    pub fn click(&self, e: &Element) -> Result<(), Error> {
        self.command("POST", &format!("/element/{}/click", e.0), None)
            .map(drop)
    }

    /// Clicks an element that starts a navigation and waits until the browser shows a page
    /// whose URL begins with `url` and whose document has loaded. A click's answer may come
    /// before the navigation commits, and the old page (it has a header, a table, an `h1` as
    /// well) is no proof of the new one; the URL and the ready state are.
    pub fn follow(&self, e: &Element, url: &str, timeout: Duration) -> Result<(), Error> {
        self.click(e)?;
        let start = Instant::now();
        loop {
            let at = self.url()?;
            if at.starts_with(url) && self.ready_state()? == "complete" {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(Error::Timeout(
                    timeout,
                    format!("a page at {url} (at {at})"),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The current document's `readyState`: "loading", "interactive" or "complete".
    pub fn ready_state(&self) -> Result<String, Error> {
        let body = json!({"script": "return document.readyState", "args": []});
        let v = self.command("POST", "/execute/sync", Some(body))?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The rendered text of an element.
    pub fn text(&self, e: &Element) -> Result<String, Error> {
        let v = self.command("GET", &format!("/element/{}/text", e.0), None)?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The current page's HTML as the browser serialises its DOM.
    pub fn source(&self) -> Result<String, Error> {
        let v = self.command("GET", "/source", None)?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Deletes all cookies of the current page's site (a browser without a session).
    pub fn delete_cookies(&self) -> Result<(), Error> {
        self.command("DELETE", "/cookie", None).map(drop)
    }

    /// Saves a PNG of the whole page to `path`. Screenshots stop at the viewport, so the
    /// window is first made as tall as the page (its `html` element's rectangle), then the
    /// `html` element is captured (spec §17.2, "Take Element Screenshot") and the window put
    /// back.
    pub fn screenshot(&self, path: &Path) -> Result<(), Error> {
        let root = self.get("html")?;
        let rect = self.command("GET", &format!("/element/{}/rect", root.0), None)?;
        let window = self.command("GET", "/window/rect", None)?;
        let height = rect["height"].as_f64().unwrap_or(0.0).ceil();
        let window_height = window["height"].as_f64().unwrap_or(0.0);
        // The window's frame takes some height even headless; 200 px more is plenty.
        let grow = height + 200.0 > window_height;
        if grow {
            let size = json!({"width": window["width"], "height": height + 200.0});
            self.command("POST", "/window/rect", Some(size))?;
        }
        let command = format!("/element/{}/screenshot", root.0);
        let v = self.command("GET", &command, None);
        if grow {
            let size = json!({"width": window["width"], "height": window["height"]});
            self.command("POST", "/window/rect", Some(size))?;
        }
        let v = v?;
        let png = v
            .as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .ok_or_else(|| Error::Answer {
                command,
                answer: v.to_string(),
            })?;
        std::fs::write(path, png).map_err(|error| Error::Write {
            path: path.to_path_buf(),
            error,
        })
    }
}

fn element(v: &Value) -> Option<Element> {
    v.get(ELEMENT_KEY)
        .and_then(Value::as_str)
        .map(|s| Element(s.to_string()))
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session makes chromedriver close Chromium and its helper processes.
        if !self.session.is_empty() {
            let _ = self.command("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
