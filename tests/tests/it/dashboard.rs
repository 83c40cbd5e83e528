//! The web dashboard in a real browser: Debian's headless Chromium driven over WebDriver
//! (chromedriver), against the real `envsync-server` binary on loopback, with data pushed
//! by the real `git-envsync` binary.
//!
//! One Chromium session serves every case, in order (the cases share the data the CLI
//! pushed once). Each case runs on its own, so one failure does not hide the others; the
//! test fails at the end, naming every case that failed. Nothing waits by sleeping: every
//! wait polls a condition in the page. Screenshots of each page, wide and phone-width, go
//! to `target/dashboard-screenshots/`.

use envsync_tests::webdriver::Browser;
use envsync_tests::{Dev, Server, binary, http, target_dir};
use serde_json::{Value, json};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const PROJECT: &str = "webshop";
const BIG_PROJECT: &str = "bigshop";
/// More keys than the matrix draws before its first paint (it adds the rest frame by frame).
const BIG_KEYS: usize = 150;
/// A branch name that is markup if a page ever parses it (valid for git and the server).
const XSS_BRANCH: &str = "x<img/src/onerror=window.pwned=1>";
/// An email that is markup too (the server accepts any email without control characters).
const XSS_EMAIL: &str = "<img src=x onerror=window.pwned=2>@evil.example";
/// The viewer's time zone: UTC+5:30 all year, so local times visibly differ from UTC.
const TZ: &str = "Asia/Kolkata";
const WIDE: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);

/// Everything the cases share: the server, the tokens, the developers who pushed.
struct World {
    server: Server,
    owner: String,
    readonly: String,
    leaver: String,
    alice: Dev,
    browser: Browser,
    origin: String,
}

impl World {
    fn new() -> World {
        let server = Server::start();
        let alice = Dev::new(&server, PROJECT);
        // main: two versions (v2 adds SENTRY_DSN and drops DEBUG).
        alice.write_env("API_KEY=a\nDATABASE_URL=b\nSTRIPE_SECRET=c\nDEBUG=1\n");
        alice.envsync(&["push"]).ok();
        alice.write_env("API_KEY=a\nDATABASE_URL=b\nSTRIPE_SECRET=c\nSENTRY_DSN=d\n");
        alice.envsync(&["push"]).ok();
        // feature/login lacks STRIPE_SECRET and has LOGIN_SECRET of its own.
        alice.git(&["checkout", "-q", "-b", "feature/login"]);
        alice.envsync(&["adopt"]).ok();
        alice.write_env("API_KEY=a\nDATABASE_URL=b\nSENTRY_DSN=d\nLOGIN_SECRET=e\n");
        alice.envsync(&["push"]).ok();
        // Mallory, whose email is markup, pushes a branch whose name is markup.
        let mallory = Dev::clone_of(&alice, &server, XSS_EMAIL);
        mallory.git(&["checkout", "-q", "-b", XSS_BRANCH]);
        mallory.envsync(&["pull"]).ok();
        mallory.write_env("API_KEY=a\nEVIL_KEY=1\n");
        mallory.envsync(&["push"]).ok();

        // A second project whose matrix is longer than the rows the page draws at once.
        let big = Dev::new(&server, BIG_PROJECT);
        let env: String = (0..BIG_KEYS).map(|k| format!("KEY_{k:03}=v\n")).collect();
        big.write_env(env);
        big.envsync(&["push"]).ok();

        let owner = server.token("owner@example.com", "owner", &[]);
        let readonly = server.token("reader@example.com", "readonly", &[PROJECT]);
        let leaver = server.token("leaver@example.com", "developer", &[PROJECT]);
        let browser = Browser::start(WIDE.0, WIDE.1, TZ);
        let origin = server.url.clone();
        World {
            server,
            owner,
            readonly,
            leaver,
            alice,
            browser,
            origin,
        }
    }

    /// Shows `hash` (`#/…`) in the page already loaded, as a click on a link would, and
    /// waits for the view's heading to contain `heading`.
    fn open(&self, hash: &str, heading: &str) {
        self.browser
            .execute("location.hash = arguments[0];", &[json!(hash)]);
        self.browser.wait_for(
            &format!("the heading '{heading}' at {hash}"),
            "const h = document.querySelector('#view h1');
             return h !== null && h.textContent.includes(arguments[0]);",
            &[json!(heading)],
        );
    }

    /// Signs in by pasting `token` into the form and pressing the button.
    fn sign_in(&self, token: &str) {
        self.browser.wait_for(
            "the sign-in form",
            "return !document.getElementById('signin').hidden;",
            &[],
        );
        self.browser.type_into("#token", token);
        self.browser.click("#signin-form button[type=submit]");
        self.browser.wait_for(
            "the signed-in header",
            "return !document.getElementById('who').hidden
                 && document.getElementById('who-text').textContent.length > 0;",
            &[],
        );
    }

    fn sign_out(&self) {
        self.browser.click("#signout");
        self.browser.wait_for(
            "the sign-in form after signing out",
            "return !document.getElementById('signin').hidden;",
            &[],
        );
    }

    /// Waits until the view's tables have stopped saying "Loading…".
    fn loaded(&self) {
        self.browser.wait_for(
            "the view to load",
            "return document.querySelector('#view') !== null
                 && !document.querySelector('#view').textContent.includes('Loading…')
                 && !document.querySelector('#view').textContent.includes('Checking…');",
            &[],
        );
    }

    /// Saves the current page wide and phone-width as `name-wide.png` and `name-phone.png`.
    fn screenshots(&self, name: &str) {
        let dir = screenshot_dir();
        self.browser
            .screenshot(&dir.join(format!("{name}-wide.png")));
        self.browser.resize(PHONE.0, PHONE.1);
        self.browser.wait_for(
            "the phone-width layout",
            "return window.innerWidth <= arguments[0];",
            &[json!(PHONE.0)],
        );
        self.browser
            .screenshot(&dir.join(format!("{name}-phone.png")));
        self.browser.resize(WIDE.0, WIDE.1);
        self.browser.wait_for(
            "the wide layout",
            "return window.innerWidth >= arguments[0];",
            &[json!(WIDE.0 - 40)],
        );
    }

    fn text(&self, css: &str) -> String {
        self.browser
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                &[json!(css)],
            )
            .as_str()
            .unwrap_or_else(|| panic!("no element matches {css}"))
            .to_owned()
    }

    fn no_script_ran(&self) {
        let pwned = self.browser.execute("return typeof window.pwned;", &[]);
        assert_eq!(pwned, "undefined", "a name ran as script");
    }
}

/// One case of the browser test: what it proves and the function that proves it.
type Case = fn(&World);

fn screenshot_dir() -> PathBuf {
    target_dir().join("dashboard-screenshots")
}

/// The cell of the matrix at key `key` and branch `branch`: its class, or null.
const MATRIX_CELL: &str = "
    const table = document.getElementById('matrix');
    if (!table) return null;
    const heads = [...table.tHead.rows[0].cells];
    const col = heads.findIndex((th) => th.dataset.branch === arguments[1]);
    if (col < 0) return null;
    const row = [...table.tBodies[0].rows].find((r) => r.cells[0].textContent === arguments[0]);
    return row ? row.cells[col].className : null;";

#[test]
fn the_dashboard_in_a_real_browser() {
    let world = World::new();
    let cases: &[(&str, Case)] = &[
        (
            "the page carries its security headers and loads its own files only",
            headers_and_assets,
        ),
        ("signing in lists the projects", sign_in_and_projects),
        (
            "the matrix marks the key a branch lacks in the right cell",
            matrix,
        ),
        (
            "the history lists the versions the CLI pushed, with commands that work",
            history,
        ),
        (
            "the audit log filters and the chain agrees with audit verify",
            audit,
        ),
        (
            "tokens are minted once and revoking one makes it 401",
            tokens,
        ),
        (
            "names with markup render as text and run nothing",
            names_are_text,
        ),
        ("keyboard only: sign in, move between sections", keyboard),
        (
            "every view reads right to a screen reader: headings, labels, table headers",
            screen_reader,
        ),
        (
            "a readonly token sees no audit or tokens page and the API refuses it",
            readonly,
        ),
        (
            "no request left for another origin and the token never was in a URL",
            nothing_left,
        ),
    ];
    let mut failed = Vec::new();
    for (name, case) in cases {
        eprintln!("case: {name}");
        if catch_unwind(AssertUnwindSafe(|| case(&world))).is_err() {
            failed.push(*name);
        }
    }
    assert!(failed.is_empty(), "failed cases: {failed:#?}");
}

/// GET `path` with a raw request; returns the head (status line and headers, lowercase)
/// and body.
fn raw_get(origin: &str, path: &str) -> (String, String) {
    let host = origin.trim_start_matches("http://");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let answer = http::exchange(host, request.as_bytes(), Duration::from_secs(20));
    (answer.head.to_ascii_lowercase(), answer.body)
}

fn headers_and_assets(w: &World) {
    for path in [
        "/",
        "/assets/app.js",
        "/assets/app.css",
        "/assets/icon.svg",
        "/health",
        "/nope",
    ] {
        let (head, _) = raw_get(&w.origin, path);
        for header in [
            "content-security-policy: default-src 'self';",
            "frame-ancestors 'none'",
            "referrer-policy: no-referrer",
            "x-content-type-options: nosniff",
        ] {
            assert!(head.contains(header), "{path} lacks {header}: {head}");
        }
        assert!(
            !head.contains("unsafe-inline") && !head.contains("unsafe-eval"),
            "{path}: {head}"
        );
    }
    let (head, page) = raw_get(&w.origin, "/");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    // No inline script or style in the page itself, and nothing from elsewhere.
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "{page}"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    let (head, _) = raw_get(&w.origin, "/assets/app.js");
    assert!(head.contains("content-type: text/javascript"), "{head}");

    w.browser.goto(&format!("{}/", w.origin));
    // Records any Content-Security-Policy violation for the last case; the page is never
    // reloaded after this (views change with the address's #fragment), so it stays.
    w.browser.execute(
        "window.__violations = [];
         document.addEventListener('securitypolicyviolation', (e) => {
           window.__violations.push(e.violatedDirective + ' ' + e.blockedURI);
         });",
        &[],
    );
    w.browser.wait_for(
        "the sign-in form",
        "return !document.getElementById('signin').hidden;",
        &[],
    );
    w.screenshots("signin");
}

fn sign_in_and_projects(w: &World) {
    w.sign_in(&w.owner);
    let who = w.text("#who-text");
    assert!(
        who.contains("owner@example.com (owner · every project)"),
        "{who}"
    );
    // An administrator sees Audit and Tokens.
    let hidden = w.browser.execute(
        "return [...document.querySelectorAll('[data-owner]')].map((e) => e.hidden);",
        &[],
    );
    assert_eq!(hidden, json!([false, false]));
    w.open("#/", "Projects");
    w.loaded();
    let rows = w.browser.execute(
        "return [...document.querySelectorAll('#view tbody tr')].map((r) =>
            [...r.cells].map((c) => c.textContent));",
        &[],
    );
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][0], BIG_PROJECT);
    let rows = &rows[1..];
    assert_eq!(rows[0][0], PROJECT);
    assert_eq!(rows[0][1], "3", "three branches: {rows:?}");
    // The last push is Mallory's, on the branch with markup in its name: shown as text.
    assert_eq!(rows[0][2], format!("{XSS_BRANCH} v1"));
    assert_eq!(rows[0][3], XSS_EMAIL);
    w.no_script_ran();
    w.screenshots("projects");

    w.open(&format!("#/p/{PROJECT}"), PROJECT);
    w.loaded();
    let branches = w.browser.execute(
        "return [...document.querySelectorAll('#view tbody th')].map((c) => c.textContent);",
        &[],
    );
    assert_eq!(branches, json!(["feature/login", "main", XSS_BRANCH]));
    w.screenshots("project");
}

fn matrix(w: &World) {
    w.open(&format!("#/p/{PROJECT}/matrix"), "key matrix");
    w.browser.find("#matrix");
    w.loaded();
    let cell = |key: &str, branch: &str| {
        w.browser
            .execute(MATRIX_CELL, &[json!(key), json!(branch)])
            .as_str()
            .unwrap_or_else(|| panic!("no cell for {key} on {branch}"))
            .to_owned()
    };
    // The default branch comes first.
    let columns = w.browser.execute(
        "return [...document.getElementById('matrix').tHead.rows[0].cells].slice(1)
            .map((th) => th.dataset.branch);",
        &[],
    );
    assert_eq!(columns, json!(["main", "feature/login", XSS_BRANCH]));
    assert_eq!(
        cell("STRIPE_SECRET", "feature/login"),
        "c-m",
        "the key feature/login lacks"
    );
    assert_eq!(cell("STRIPE_SECRET", "main"), "c-p");
    assert_eq!(
        cell("LOGIN_SECRET", "feature/login"),
        "c-o",
        "a key only feature/login has"
    );
    assert_eq!(cell("LOGIN_SECRET", "main"), "c-a");
    assert_eq!(cell("API_KEY", "feature/login"), "c-p");
    assert_eq!(cell("SENTRY_DSN", XSS_BRANCH), "c-m");
    assert_eq!(cell("EVIL_KEY", XSS_BRANCH), "c-o");
    // What a screen reader says for a cell: the word, not the mark.
    let spoken = w.browser.execute(
        "return ['c-p', 'c-m', 'c-o', 'c-a'].map((c) =>
            document.querySelector('#matrix td.' + c).getAttribute('aria-label'));",
        &[],
    );
    assert_eq!(
        spoken,
        json!(["present", "missing", "only here", "neither"])
    );
    // Missing counts per branch: main 0, feature/login 1, the other branch 3.
    let counts = w.browser.execute(
        "return [...document.querySelector('#matrix tr.counts').cells].slice(1)
            .map((c) => c.firstChild.textContent);",
        &[],
    );
    assert_eq!(counts, json!(["0", "1", "3"]));
    w.screenshots("matrix");
    // Dark, as a system that prefers it shows the page.
    let light = w.browser.execute(
        "return getComputedStyle(document.body).backgroundColor;",
        &[],
    );
    w.browser.cdp(
        "Emulation.setEmulatedMedia",
        json!({ "features": [{ "name": "prefers-color-scheme", "value": "dark" }] }),
    );
    let dark = w.browser.wait_for(
        "the dark colours",
        "const c = getComputedStyle(document.body).backgroundColor;
         return c !== arguments[0] ? c : null;",
        std::slice::from_ref(&light),
    );
    assert_eq!(light, "rgb(255, 255, 255)");
    assert_eq!(dark, "rgb(13, 17, 23)");
    w.browser
        .screenshot(&screenshot_dir().join("matrix-dark-wide.png"));
    w.browser
        .cdp("Emulation.setEmulatedMedia", json!({ "features": [] }));
    // The view alone, for the README (docs/dashboard-matrix.png is a copy).
    w.browser
        .element_screenshot("#view .view", &screenshot_dir().join("matrix-view.png"));

    // Filters: by key, then by branch.
    w.browser.type_into("#key-filter", "stripe");
    w.browser.wait_for(
        "the key filter",
        "return document.querySelectorAll('#matrix tbody tr').length === 1;",
        &[],
    );
    w.browser.type_into("#key-filter", "");
    w.browser.type_into("#branch-filter", "login");
    w.browser.wait_for(
        "the branch filter",
        "const t = document.getElementById('matrix');
         return t && t.tHead.rows[0].cells.length === 3
             && document.querySelectorAll('#matrix tbody tr').length === 6;",
        &[],
    );
    w.browser.type_into("#branch-filter", "");
    w.browser.wait_for(
        "every branch again",
        "const t = document.getElementById('matrix');
         return t && t.tHead.rows[0].cells.length === 4;",
        &[],
    );
    // Another default branch, picked on the page.
    w.browser.execute(
        "const s = document.getElementById('default-branch');
         s.value = 'feature/login';
         s.dispatchEvent(new Event('change'));",
        &[],
    );
    w.browser.wait_for(
        "feature/login as the default branch",
        "const t = document.getElementById('matrix');
         return t && t.tHead.rows[0].cells[1].dataset.branch === 'feature/login';",
        &[],
    );
    assert_eq!(cell("STRIPE_SECRET", "main"), "c-o");
    assert_eq!(cell("LOGIN_SECRET", "main"), "c-m");
    w.browser.execute(
        "sessionStorage.removeItem('envsync.default.' + arguments[0]);",
        &[json!(PROJECT)],
    );
    let measured = w.browser.execute(
        "return performance.getEntriesByName('envsync:matrix').length;",
        &[],
    );
    assert!(
        measured.as_u64().unwrap_or(0) >= 1,
        "the render is measured"
    );

    // A longer matrix is drawn whole, each key once and in order, though not in one frame.
    w.open(&format!("#/p/{BIG_PROJECT}/matrix"), "key matrix");
    let keys = w.browser.wait_for(
        "every row of the long matrix",
        "const wrap = document.querySelector('.matrix-wrap');
         if (!wrap || !wrap.dataset.complete) return null;
         return [...document.querySelectorAll('#matrix tbody th')].map((th) => th.textContent);",
        &[],
    );
    let expected: Vec<String> = (0..BIG_KEYS).map(|k| format!("KEY_{k:03}")).collect();
    assert_eq!(keys, json!(expected));
    let complete = w.browser.execute(
        "return performance.getEntriesByName('envsync:matrix:complete').length;",
        &[],
    );
    assert_eq!(complete, 1);
}

fn history(w: &World) {
    w.open(&format!("#/p/{PROJECT}/b/main"), "main: history");
    w.loaded();
    let rows = w.browser.execute(
        "return [...document.querySelectorAll('#history tbody tr')].map((r) => ({
            version: r.dataset.version,
            by: r.cells[1].textContent,
            at: r.cells[2].querySelector('time').getAttribute('datetime'),
            title: r.cells[2].querySelector('time').title,
            shown: r.cells[2].textContent,
            added: [...r.cells[3].querySelectorAll('li')].map((l) => l.textContent),
            removed: [...r.cells[4].querySelectorAll('li')].map((l) => l.textContent),
            commands: [...r.cells[5].querySelectorAll('code')].map((c) => c.textContent),
         }));",
        &[],
    );
    let rows = rows.as_array().expect("rows").clone();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["version"], "2", "newest first: {rows:?}");
    assert_eq!(rows[1]["version"], "1");
    assert_eq!(rows[0]["by"], "dev@example.com");
    assert_eq!(rows[0]["added"], json!(["SENTRY_DSN"]));
    assert_eq!(rows[0]["removed"], json!(["DEBUG"]));
    assert_eq!(
        rows[1]["added"],
        json!(["API_KEY", "DATABASE_URL", "STRIPE_SECRET", "DEBUG"])
    );
    assert_eq!(
        rows[1]["commands"],
        json!([
            "git envsync pull --branch main --version 1",
            "git envsync rollback --branch main 1"
        ])
    );
    // The versions are the ones the server holds, with their times.
    let api = w
        .server
        .request(
            "GET",
            &format!("/env/{PROJECT}/main/versions"),
            &w.owner,
            None,
        )
        .json();
    let pushed_at = api["versions"][0]["pushed_at"].as_str().expect("pushed_at");
    assert_eq!(rows[0]["at"], pushed_at);
    // Shown in the viewer's zone (UTC+5:30 here), with the UTC value on hover.
    let zone = w.browser.execute(
        "return Intl.DateTimeFormat().resolvedOptions().timeZone;",
        &[],
    );
    // ICU's canonical name for the zone is the older one.
    assert!(zone == TZ || zone == "Asia/Calcutta", "{zone}");
    assert!(
        rows[0]["title"].as_str().is_some_and(
            |t| t.ends_with(" UTC") && t.starts_with(&pushed_at[..16].replace('T', " "))
        ),
        "{rows:?}"
    );
    let shown = rows[0]["shown"].as_str().unwrap_or_default();
    assert!(
        shown.contains(&kolkata_clock(pushed_at)),
        "{shown} for {pushed_at}"
    );

    // The copy button puts the command on the clipboard (with the permission a user's
    // browser grants a page they use), and says so to a screen reader.
    w.browser.cdp(
        "Browser.grantPermissions",
        json!({ "origin": w.origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"] }),
    );
    w.browser
        .click("#history tbody tr[data-version='1'] td:nth-child(6) button.copy");
    let copied = w.browser.wait_for(
        "the copied command",
        "return navigator.clipboard.readText().then((t) => t || null, () => null);",
        &[],
    );
    let command = rows[1]["commands"][0].as_str().expect("command");
    assert_eq!(copied, command);
    w.browser.wait_for(
        "the copy announced to a screen reader",
        "return document.getElementById('status').textContent === 'Copied: ' + arguments[0];",
        &[json!(command)],
    );

    // The copied command does what it says in a clone: version 1 comes back.
    let bob = Dev::clone_of(&w.alice, &w.server, "bob@example.com");
    let run = bob
        .sh_cmd(command)
        .output()
        .expect("run the copied command");
    assert!(
        run.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let env = String::from_utf8(bob.read_env().expect("the env file")).expect("utf8");
    assert!(
        env.contains("DEBUG=1") && !env.contains("SENTRY_DSN"),
        "{env}"
    );
    w.screenshots("history");
}

/// `HH:MM` UTC from an RFC 3339 time, as a 12-hour clock in Asia/Kolkata (`9:41`).
fn kolkata_clock(rfc3339: &str) -> String {
    let hour: u32 = rfc3339[11..13].parse().expect("hour");
    let minute: u32 = rfc3339[14..16].parse().expect("minute");
    let local = (hour * 60 + minute + 330) % 1440;
    let h24 = local / 60;
    let h12 = (h24 + 11) % 12 + 1;
    format!("{h12}:{:02}", local % 60)
}

fn audit(w: &World) {
    w.open("#/audit", "Audit");
    w.loaded();
    let chain = w.text("#chain-state");
    assert!(chain.starts_with("Intact: ok ("), "{chain}");
    let heads: Vec<String> = chain
        .split("Head ")
        .skip(1)
        .map(|h| h.trim().to_owned())
        .collect();
    assert!(!heads.is_empty(), "{chain}");
    // The same walk as `audit verify`: the heads the page shows anchor it.
    let mut verify = Command::new(binary("envsync-server"));
    verify.args(["audit", "verify", "--db"]).arg(&w.server.db);
    for head in &heads {
        verify.args(["--anchor", head]);
    }
    let verify = verify.output().expect("run audit verify");
    assert!(
        verify.status.success(),
        "audit verify --anchor {heads:?}: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    // Filters: accepted pushes only.
    w.browser.type_into("#audit-action", "push");
    w.browser.type_into("#audit-outcome", "ok");
    w.browser.click("#view form button[type=submit]");
    w.browser.wait_for(
        "the filtered events",
        "const rows = [...document.querySelectorAll('#audit tbody tr')];
         return rows.length === 5 && rows.every((r) =>
             r.cells[2].textContent === 'push' && r.cells[6].textContent === 'ok');",
        &[],
    );
    w.browser.type_into("#audit-branch", XSS_BRANCH);
    w.browser.click("#view form button[type=submit]");
    w.browser.wait_for(
        "the events of one branch",
        "const rows = [...document.querySelectorAll('#audit tbody tr')];
         return rows.length === 1 && rows[0].cells[1].textContent === arguments[0];",
        &[json!(XSS_EMAIL)],
    );
    w.no_script_ran();
    w.browser.click("#view form button[type=reset]");
    w.browser.wait_for(
        "every event again",
        "return document.querySelectorAll('#audit tbody tr').length > 4;",
        &[],
    );
    w.screenshots("audit");
}

fn tokens(w: &World) {
    w.open("#/tokens", "Tokens");
    w.loaded();
    assert_eq!(
        w.server.request("GET", "/whoami", &w.leaver, None).status,
        200
    );
    let jti = w.browser.wait_for(
        "the leaver's token in the list",
        "const row = [...document.querySelectorAll('#tokens tbody tr')]
             .find((r) => r.cells[0].textContent === 'leaver@example.com');
         return row ? row.dataset.jti : null;",
        &[],
    );
    let jti = jti.as_str().expect("jti").to_owned();
    w.browser
        .click(&format!("#tokens tr[data-jti='{jti}'] button.danger"));
    w.browser
        .click(&format!("#tokens button[data-confirm='{jti}']"));
    w.browser.wait_for(
        "the revoked state",
        "const row = document.querySelector(`#tokens tr[data-jti='${arguments[0]}']`);
         return row && row.cells[5].textContent === 'revoked';",
        &[json!(jti)],
    );
    let refused = w.server.request("GET", "/whoami", &w.leaver, None);
    assert_eq!(refused.status, 401, "{}", refused.body);
    let refused = w
        .server
        .request("GET", &format!("/env/{PROJECT}/main/keys"), &w.leaver, None);
    assert_eq!(refused.status, 401, "{}", refused.body);

    // Minting shows the new token once, and it works.
    w.browser.type_into("#mint-email", "newcomer@example.com");
    w.browser.execute(
        "document.getElementById('mint-role').value = 'readonly';",
        &[],
    );
    w.browser.type_into("#mint-projects", PROJECT);
    w.browser.click("#view form button[type=submit]");
    let token = w.browser.wait_for(
        "the minted token",
        "const t = document.getElementById('minted-token'); return t ? t.value : null;",
        &[],
    );
    let token = token.as_str().expect("token").to_owned();
    let me = w.server.request("GET", "/whoami", &token, None);
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["role"], "readonly");
    assert_eq!(me.json()["email"], "newcomer@example.com");
    w.browser.wait_for(
        "the new token in the list",
        "return [...document.querySelectorAll('#tokens tbody th')]
             .some((c) => c.textContent === 'newcomer@example.com');",
        &[],
    );
    w.screenshots("tokens");
}

fn names_are_text(w: &World) {
    w.open(
        &format!("#/p/{PROJECT}/b/{}", percent_encoding_component(XSS_BRANCH)),
        XSS_BRANCH,
    );
    w.loaded();
    assert_eq!(w.text("#view h1"), format!("{XSS_BRANCH}: history"));
    assert_eq!(w.text("#history tbody tr td"), XSS_EMAIL);
    let code = w.text("#history tbody code");
    assert_eq!(
        code,
        "git envsync pull --branch 'x<img/src/onerror=window.pwned=1>' --version 1"
    );
    w.no_script_ran();
    w.open(&format!("#/p/{PROJECT}/matrix"), "key matrix");
    w.browser.find("#matrix");
    let header = w.browser.execute(
        "const th = [...document.getElementById('matrix').tHead.rows[0].cells]
             .find((c) => c.dataset.branch === arguments[0]);
         return th ? th.querySelector('a').textContent : null;",
        &[json!(XSS_BRANCH)],
    );
    assert_eq!(header, XSS_BRANCH);
    // The only image on the page is the page's own icon: no name became an element.
    let images = w
        .browser
        .execute("return document.querySelectorAll('img').length;", &[]);
    assert_eq!(images, 1);
    w.no_script_ran();
}

/// `encodeURIComponent` as the page does it.
fn percent_encoding_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn keyboard(w: &World) {
    w.sign_out();
    // Sign in with the keyboard alone: the token field has the focus; Enter submits.
    let focused = w.browser.execute("return document.activeElement.id;", &[]);
    assert_eq!(focused, "token");
    w.browser.keys(&w.owner);
    w.browser.keys("\u{E007}");
    w.browser.wait_for(
        "the signed-in header",
        "return !document.getElementById('who').hidden;",
        &[],
    );
    // From the view's heading, Shift+Tab back to the Tokens link; Enter follows it.
    let mut reached = false;
    for _ in 0..20 {
        w.browser.keys("\u{E008}\u{E004}");
        let on = w.browser.execute(
            "return document.activeElement.dataset ? document.activeElement.dataset.section : null;",
            &[],
        );
        if on == "tokens" {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab never reached the Tokens link");
    w.browser.keys("\u{E007}");
    w.browser.wait_for(
        "the Tokens view, its heading focused",
        "const h = document.querySelector('#view h1');
         return h && h.textContent === 'Tokens' && document.activeElement === h;",
        &[],
    );
}

/// What a screen reader relies on, checked in the DOM of every view: one `h1` and no
/// skipped heading level; every control with a name (its label, or `aria-label`); every
/// table with a caption and a header cell per column.
const STRUCTURE: &str = "
    const problems = [];
    const root = document.querySelector('#view') || document.body;
    const levels = [...document.querySelectorAll('main h1, main h2, main h3, main h4')]
        .filter((h) => h.offsetParent !== null)
        .map((h) => Number(h.tagName[1]));
    if (levels.filter((l) => l === 1).length !== 1) problems.push('h1s: ' + levels);
    levels.forEach((l, i) => { if (i > 0 && l > levels[i - 1] + 1) problems.push('skip: ' + levels); });
    for (const c of document.querySelectorAll('input, select, textarea, button')) {
        if (c.type === 'hidden' || c.offsetParent === null) continue;
        const named = (c.labels && c.labels.length > 0) || c.getAttribute('aria-label')
            || c.getAttribute('aria-labelledby') || (c.tagName === 'BUTTON' && c.textContent.trim());
        if (!named) problems.push('unnamed ' + c.tagName + '#' + c.id + '.' + c.className);
    }
    for (const t of root.querySelectorAll('table')) {
        if (!t.caption && !t.getAttribute('aria-label')) problems.push('no caption: #' + t.id);
        const head = t.tHead && t.tHead.rows[0];
        const body = t.tBodies[0] && t.tBodies[0].rows[0];
        if (!head || [...head.cells].some((c) => c.tagName !== 'TH')) problems.push('head: #' + t.id);
        if (head && body && head.cells.length !== body.cells.length) problems.push('columns: #' + t.id);
    }
    return problems;";

fn screen_reader(w: &World) {
    let views = [
        ("#/".to_owned(), "Projects"),
        (format!("#/p/{PROJECT}/matrix"), "key matrix"),
        (format!("#/p/{PROJECT}/b/main"), "main: history"),
        ("#/audit".to_owned(), "Audit"),
        ("#/tokens".to_owned(), "Tokens"),
    ];
    for (hash, heading) in views {
        w.open(&hash, heading);
        w.loaded();
        let problems = w.browser.execute(STRUCTURE, &[]);
        assert_eq!(problems, json!([]), "{hash}");
    }
    // The check itself can fail: a control without a name, a table without headers.
    let planted = w.browser.execute(
        &format!(
            "const v = document.querySelector('#view');
             const i = document.createElement('input'); i.id = 'planted';
             const t = document.createElement('table'); t.id = 'planted-table';
             t.createTBody().insertRow().insertCell();
             v.append(i, t);
             const problems = (() => {{ {STRUCTURE} }})();
             i.remove(); t.remove();
             return problems;"
        ),
        &[],
    );
    assert_eq!(
        planted,
        json!([
            "unnamed INPUT#planted.",
            "no caption: #planted-table",
            "head: #planted-table"
        ])
    );
    w.sign_out();
    let problems = w.browser.execute(STRUCTURE, &[]);
    assert_eq!(problems, json!([]), "the sign-in form");
    w.sign_in(&w.owner);
}

fn readonly(w: &World) {
    w.sign_out();
    let kept = w.browser.execute("return sessionStorage.length;", &[]);
    assert_eq!(kept, 0, "signing out forgets the token");
    w.sign_in(&w.readonly);
    let hidden = w.browser.execute(
        "return [...document.querySelectorAll('[data-owner]')].map((e) => e.hidden);",
        &[],
    );
    assert_eq!(hidden, json!([true, true]), "no Audit or Tokens link");
    w.open(&format!("#/p/{PROJECT}/matrix"), "key matrix");
    w.browser.find("#matrix");
    w.open("#/audit", "Audit");
    assert!(w.text("#view").contains("is for owner tokens"));
    w.screenshots("readonly-audit");
    w.open("#/tokens", "Tokens");
    assert!(w.text("#view").contains("is for owner tokens"));
    // And the API refuses it anyway.
    for path in [
        format!("/audit/{PROJECT}"),
        "/audit".to_owned(),
        "/audit-chain".to_owned(),
        "/tokens".to_owned(),
    ] {
        let r = w.server.request("GET", &path, &w.readonly, None);
        assert_eq!(r.status, 403, "{path}: {}", r.body);
    }
    let r = w.server.request(
        "POST",
        "/tokens",
        &w.readonly,
        Some(r#"{"email":"x@y","role":"owner"}"#),
    );
    assert_eq!(r.status, 403, "{}", r.body);
}

fn nothing_left(w: &World) {
    let origin = w.origin.clone();
    // The detector works: a request to another origin is blocked and recorded.
    w.browser.execute(
        "const i = new Image(); i.src = 'http://127.0.0.2:9/probe.png';",
        &[],
    );
    let seen = w.browser.wait_for(
        "the probe's violation",
        "return window.__violations && window.__violations.find((v) => v.includes('127.0.0.2'));",
        &[],
    );
    assert!(
        seen.as_str().is_some_and(|v| v.starts_with("img-src")),
        "{seen}"
    );
    let violations = w.browser.execute("return window.__violations;", &[]);
    let others: Vec<&Value> = violations
        .as_array()
        .expect("violations")
        .iter()
        .filter(|v| !v.as_str().unwrap_or("").contains("127.0.0.2"))
        .collect();
    assert!(others.is_empty(), "CSP violations: {others:?}");
    // Every resource the page fetched came from the server's own origin.
    let entries = w.browser.execute(
        "return performance.getEntriesByType('resource').map((e) => e.name)
            .concat(performance.getEntriesByType('navigation').map((e) => e.name));",
        &[],
    );
    let entries = entries.as_array().expect("entries");
    assert!(entries.len() > 10, "{entries:?}");
    for name in entries {
        let name = name.as_str().unwrap_or_default();
        if name.contains("127.0.0.2") {
            continue; // the probe, blocked before it left
        }
        assert!(name.starts_with(&format!("{origin}/")), "{name}");
    }
    // No token in any address the page loaded, nor in the page's address, nor in any
    // path the server saw (its access log has every one).
    let log = std::fs::read_to_string(&w.server.stderr_log).expect("server log");
    for token in [&w.owner, &w.readonly, &w.leaver] {
        let signature = token.rsplit('.').next().unwrap_or(token);
        for name in entries {
            assert!(!name.as_str().unwrap_or("").contains(signature), "{name}");
        }
        assert!(!w.browser.url().contains(signature));
        assert!(!log.contains(signature), "a token reached the server log");
    }
    // No script error in the console.
    let console = w.browser.console();
    let errors: Vec<&String> = console
        .iter()
        .filter(|l| l.contains("Uncaught") || l.contains("TrustedHTML"))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    w.no_script_ran();
}
