//! What every page shares, seen by a real browser (Debian's chromium, see
//! support/browser.rs): the security headers forbid inline code, the
//! harness reports a violation when a page breaks that rule (so the page
//! tests' "no CSP violation" can fail), and the embedded assets load.

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use sentryk8s::config::Config;
use tokio::net::TcpListener;

use crate::support::browser::{Browser, Scheme};

/// One page that follows the policy and one that breaks it, behind the web
/// role's own layers.
async fn serve() -> String {
    let config = Config::defaults().expect("defaults");
    let pages = Router::new()
        .route(
            "/clean",
            get(|| async {
                Html(
                    "<!doctype html><html><head><meta name=viewport content=\"width=device-width\">\
                     <link rel=icon href=/assets/favicon.svg><link rel=stylesheet href=/assets/base.css>\
                     <title>clean</title></head><body><p class=\"state state-up\">Up</p></body></html>",
                )
            }),
        )
        .route(
            "/inline",
            get(|| async {
                Html(
                    "<!doctype html><html><head><title>inline</title></head><body>\
                     <p style=\"color:red\">styled</p><script>document.title = 'ran'</script></body></html>",
                )
            }),
        )
        .merge(sentryk8s::web::ui::router());
    let app = sentryk8s::web::layered(pages, &config.web);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_page_with_inline_code_is_blocked_and_reported() {
    let base = serve().await;
    let mut page = Browser::launch().await.expect("browser");
    page.open(&format!("{base}/inline")).await.expect("open");
    let title: String = page.eval_as("document.title").await.expect("title");
    assert_eq!(title, "inline", "the inline script must not run");
    let problems = page.problems().await;
    let violations: Vec<_> = problems.iter().filter(|p| p.starts_with("CSP violation")).collect();
    assert!(violations.iter().any(|v| v.contains("script-src")), "{problems:#?}");
    assert!(violations.iter().any(|v| v.contains("style-src")), "{problems:#?}");
}

#[tokio::test]
async fn a_clean_page_loads_its_assets_without_a_problem() {
    let base = serve().await;
    let mut page = Browser::launch().await.expect("browser");
    page.viewport(360, 640).await.expect("viewport");
    page.color_scheme(Scheme::Dark).await.expect("dark");
    page.open(&format!("{base}/clean")).await.expect("open");
    // The stylesheet applied: the dark background of base.css.
    let background: String =
        page.eval_as("getComputedStyle(document.body).backgroundColor").await.expect("style");
    assert_eq!(background, "rgb(13, 17, 23)");
    let width: u32 = page.eval_as("window.innerWidth").await.expect("width");
    assert_eq!(width, 360);
    assert_eq!(page.problems().await, Vec::<String>::new());
    let shot = page.screenshot("ui-clean-phone-dark").await.expect("screenshot");
    let bytes = std::fs::read(&shot).expect("read screenshot");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
}

#[tokio::test]
async fn a_missing_asset_is_a_problem_the_harness_sees() {
    let base = serve().await;
    let mut page = Browser::launch().await.expect("browser");
    page.open(&format!("{base}/assets/nothing.css")).await.expect("open");
    let status: String = page.eval_as("document.body.innerText").await.expect("text");
    assert_eq!(status.trim(), "no such asset");
    page.open(&format!("{base}/clean")).await.expect("open");
    page.hover("p").await.expect("hover");
    page.click("p").await.expect("click");
    assert!(page.hover("#absent").await.is_err());
}
