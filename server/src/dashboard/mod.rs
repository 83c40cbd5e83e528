//! The web dashboard: one page and its script, style and icon, embedded in the binary and
//! served at `/` beside the JSON API (which keeps its paths).
//!
//! The page is static: it signs in with a pasted token (kept in the tab's
//! `sessionStorage`, sent only as the `Authorization` header) and draws what the API
//! answers — names and metadata, never a value, and every name as text. There is no build
//! step: the files under `server/assets/dashboard/` are what the browser runs.
//!
//! [`security_headers`] go on every response of the server, page or API: a strict
//! Content-Security-Policy (same origin only, no inline script or style, Trusted Types so
//! that no string can become HTML, no framing), `Referrer-Policy: no-referrer` and
//! `X-Content-Type-Options: nosniff`.

use warp::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use warp::hyper::body::Bytes;
use warp::reply::Response;
use warp::{Filter, Rejection};

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The path it is served at.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// Everything the page loads: the HTML, its stylesheet, its script and its icon.
pub const ASSETS: [Asset; 4] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../assets/dashboard/index.html"),
    },
    Asset {
        path: "/assets/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../assets/dashboard/app.css"),
    },
    Asset {
        path: "/assets/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../assets/dashboard/app.js"),
    },
    Asset {
        path: "/assets/icon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../../assets/dashboard/icon.svg"),
    },
];

/// The page's own weight (HTML, CSS, JS and icon), in bytes, uncompressed.
pub fn weight() -> usize {
    ASSETS.iter().map(|a| a.body.len()).sum()
}

/// The policy every response carries. Same origin only, nothing inline, no plugin, no
/// `<base>` rewrite, forms only to this origin, never inside a frame; and Trusted Types,
/// which make the browser refuse any string assigned to `innerHTML` and its kin.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

/// The headers every response of the server carries.
pub fn security_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers
}

fn reply(asset: &Asset) -> Response {
    let mut response = Response::new(Bytes::from_static(asset.body.as_bytes()).into());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    // Revalidated on every load, so a new server version is picked up at once.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /` and `GET /assets/…`: the embedded files. No authentication: they hold nothing
/// but the page's code.
pub fn routes() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let [index, style, script, icon] = ASSETS;
    let page = warp::path::end().map(move || reply(&index));
    let style = warp::path!("assets" / "app.css").map(move || reply(&style));
    let script = warp::path!("assets" / "app.js").map(move || reply(&script));
    let icon = warp::path!("assets" / "icon.svg").map(move || reply(&icon));
    warp::get().and(page.or(style).unify().or(script).unify().or(icon).unify())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name on the page is text: the script never hands a string to the HTML parser
    /// or to the JavaScript compiler. (The policy's Trusted Types would refuse it at run
    /// time; this keeps it out of the source.)
    #[test]
    fn the_script_never_parses_strings_as_markup_or_code() {
        let script = ASSETS[2].body;
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "createContextualFragment",
            "DOMParser",
            "eval(",
            "new Function",
            "srcdoc",
            "javascript:",
        ] {
            assert!(!script.contains(sink), "app.js uses {sink}");
        }
        // Nothing inline in the page: one script and one stylesheet, both files.
        let page = ASSETS[0].body;
        assert_eq!(page.matches("<script").count(), 1);
        assert!(page.contains(r#"<script src="/assets/app.js" defer></script>"#));
        assert!(!page.contains("style=") && !page.contains("<style"));
        let handler = page.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!handler, "an inline event handler in the page");
    }

    #[test]
    fn the_page_weighs_under_100_kb_and_loads_nothing_from_elsewhere() {
        assert!(weight() < 100 * 1024, "{} bytes", weight());
        for asset in ASSETS {
            for pattern in ["http://", "https://", "//cdn", "@import"] {
                assert!(
                    !asset.body.contains(pattern) || asset.path == "/assets/icon.svg",
                    "{} mentions {pattern}",
                    asset.path
                );
            }
        }
    }
}
