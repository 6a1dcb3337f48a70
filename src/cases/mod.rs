//! `tillsyn cases`: the case officer's view of the PostgreSQL case store
//! that `tillsyn sink postgres` fills.
//!
//! - `GET /` (Swedish; `?lang=en` English): the open episodes (opened or
//!   escalated), the most severe first and then the oldest, filtered by
//!   municipality and rule with a plain GET form.
//! - `GET /episodes/{id}`: one episode: its state, explanation, observed
//!   and expected values, every alert of it by revision, its evidence ids.
//! - `GET /events`: Server-Sent Events when the store changes (fed by
//!   `LISTEN tillsyn_case_store`, see [`live`]); the pages' small script
//!   re-reads their live part on each, without a reload.
//! - `GET /metrics`, `/healthz`, `/readyz` as every tillsyn command (ready
//!   while connected to a store that has its tables).
//!
//! Pages are rendered on the server ([`pages`], maud) from plain rows
//! ([`store`]); words and formats are in [`text`]. The view reads only,
//! in a read-only session, with the `[sink.postgres]` connection settings,
//! and listens on `cases.listen`. It has no login of its own: it shows
//! providers and municipalities (the store holds no personal data), but
//! keep it on loopback or behind a proxy that authenticates.

pub mod live;
pub mod pages;
pub mod store;
pub mod text;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::Markup;
use tokio::sync::{broadcast, watch};
use tracing::{info, warn};

use crate::service::config::ServiceConfig;
use crate::telemetry;
use live::{Change, Connection};
use store::Filter;
use text::Lang;

/// The stylesheet of every page.
const STYLESHEET: &str = include_str!("assets/case-view.css");
/// The pages' one script: live updates.
const SCRIPT: &str = include_str!("assets/case-view.js");

/// What every page may load: its own stylesheet, script and events.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The handlers' shared state.
pub struct App {
    connection: Arc<Connection>,
    changes: broadcast::Sender<Change>,
    stop: watch::Receiver<bool>,
    max_episodes: usize,
}

/// Serves the view on `cases.listen` until `shutdown` completes: the
/// pages, the events, and /metrics, /healthz, /readyz. Installs the
/// process's metrics recorder.
pub async fn run(config: ServiceConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let database = config.sink.postgres.connection().map_err(anyhow::Error::msg)?;
    let handle = telemetry::install_recorder()?;
    let health = telemetry::Health::new();
    health.set_not_ready("connecting to the case store");
    let addr = config.cases.listen_addr().context("cases.listen")?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))?;
    info!(listen = %listener.local_addr()?, "serving the case officer's view, /metrics, /healthz and /readyz");

    let (stop_tx, stop) = watch::channel(false);
    let (app, changes) = App::new(config.cases.max_episodes, stop.clone());
    let keeper = tokio::spawn(live::keep_connected(database, app.connection.clone(), changes, health.clone(), stop));
    let router = router(app).merge(telemetry::http::router(handle, health));
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Ends the event streams, so that their connections close.
            let _ = stop_tx.send(true);
        })
        .await;
    let _ = keeper.await;
    info!("case officer's view stopped");
    result.context("serving the case officer's view")
}

impl App {
    /// The state, not connected yet, and the sender of its changes.
    fn new(max_episodes: usize, stop: watch::Receiver<bool>) -> (Arc<App>, broadcast::Sender<Change>) {
        let (changes, _) = broadcast::channel(64);
        let app = App { connection: Arc::new(Connection::default()), changes: changes.clone(), stop, max_episodes };
        (Arc::new(app), changes)
    }
}

/// The view's routes (without the telemetry ones).
fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(list))
        .route("/episodes/{id}", get(episode))
        .route("/events", get(live::events))
        .route("/assets/case-view.css", get(|| async { asset("text/css; charset=utf-8", STYLESHEET) }))
        .route("/assets/case-view.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(not_found)
        .with_state(app)
        .layer(axum::middleware::map_response(security_headers))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// A page: never cached (it changes with every alert).
fn page(status: StatusCode, markup: Markup) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], markup).into_response()
}

fn unavailable(lang: Lang, switch_href: &str) -> Response {
    let t = lang.t();
    page(StatusCode::SERVICE_UNAVAILABLE, pages::message_page(lang, t.unavailable_title, t.unavailable, switch_href))
}

fn lang_of(query: &HashMap<String, String>) -> Lang {
    Lang::from_param(query.get("lang").map(String::as_str))
}

/// `GET /`.
async fn list(State(app): State<Arc<App>>, Query(query): Query<HashMap<String, String>>) -> Response {
    let lang = lang_of(&query);
    let filter = Filter::new(query.get("municipality").map(String::as_str), query.get("rule").map(String::as_str));
    let switch = pages::list_href(lang.other(), &filter);
    let Some(client) = app.connection.client() else { return unavailable(lang, &switch) };
    // Both at once, pipelined on the one connection.
    let read = tokio::try_join!(store::choices(&client), store::open_episodes(&client, &filter, app.max_episodes));
    match read {
        Ok((choices, open)) => page(StatusCode::OK, pages::list_page(lang, &filter, &choices, &open)),
        Err(e) => {
            warn!(error = %e, "reading the open episodes");
            unavailable(lang, &switch)
        }
    }
}

/// `GET /episodes/{id}`.
async fn episode(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let lang = lang_of(&query);
    let switch = pages::episode_href(lang.other(), &id);
    let Some(client) = app.connection.client() else { return unavailable(lang, &switch) };
    let read = async {
        let Some(episode) = store::episode(&client, &id).await? else { return Ok(None) };
        let history = store::history(&client, &id).await?;
        Ok::<_, tokio_postgres::Error>(Some((episode, history)))
    };
    match read.await {
        Ok(Some((episode, history))) => page(StatusCode::OK, pages::episode_page(lang, &episode, &history)),
        Ok(None) => {
            let t = lang.t();
            page(StatusCode::NOT_FOUND, pages::message_page(lang, t.not_found_title, t.not_found, &switch))
        }
        Err(e) => {
            warn!(error = %e, "reading an episode");
            unavailable(lang, &switch)
        }
    }
}

/// Any other address.
async fn not_found(Query(query): Query<HashMap<String, String>>) -> Response {
    let lang = lang_of(&query);
    let t = lang.t();
    let switch = pages::list_href(lang.other(), &Filter::default());
    page(StatusCode::NOT_FOUND, pages::message_page(lang, t.not_found_title, t.not_found, &switch))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;

    /// The view without a database, on a free port.
    async fn serve() -> (SocketAddr, Arc<App>, broadcast::Sender<Change>, watch::Sender<bool>) {
        let (stop_tx, stop) = watch::channel(false);
        let (app, changes) = App::new(10, stop);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = router(app.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (addr, app, changes, stop_tx)
    }

    /// `GET path`: the status line and headers, and the body read until
    /// `until` appears in it or the connection closes.
    fn get(addr: SocketAddr, path: &str, until: Option<&str>) -> (String, String) {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) => panic!("reading {path}: {e} after {}", String::from_utf8_lossy(&raw)),
            }
            if until.is_some_and(|u| String::from_utf8_lossy(&raw).contains(u)) {
                break;
            }
        }
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.to_string(), body.to_string())
    }

    async fn get_async(addr: SocketAddr, path: &'static str, until: Option<&'static str>) -> (String, String) {
        tokio::task::spawn_blocking(move || get(addr, path, until)).await.unwrap()
    }

    #[tokio::test]
    async fn without_a_store_the_pages_say_so_in_the_readers_language() {
        let (addr, _app, _changes, _stop) = serve().await;
        let (head, body) = get_async(addr, "/", None).await;
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
        assert!(head.to_ascii_lowercase().contains("content-security-policy: default-src 'none'"), "{head}");
        assert!(head.to_ascii_lowercase().contains("cache-control: no-store"), "{head}");
        assert!(body.contains("<html lang=\"sv\">") && body.contains("Ärendeförrådet kan inte nås"), "{body}");
        let (head, body) = get_async(addr, "/episodes/abc?lang=en", None).await;
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
        assert!(body.contains("<html lang=\"en\">") && body.contains("The case store cannot be reached"), "{body}");
        let (head, body) = get_async(addr, "/nothing?lang=en", None).await;
        assert!(head.starts_with("HTTP/1.1 404") && body.contains("No such case"), "{head}\n{body}");
    }

    #[tokio::test]
    async fn the_assets_are_served() {
        let (addr, _app, _changes, _stop) = serve().await;
        let (head, body) = get_async(addr, "/assets/case-view.js", None).await;
        assert!(head.starts_with("HTTP/1.1 200") && head.contains("text/javascript"), "{head}");
        assert!(body.contains("EventSource"));
        let (head, body) = get_async(addr, "/assets/case-view.css", None).await;
        assert!(head.starts_with("HTTP/1.1 200") && head.contains("text/css"), "{head}");
        assert!(body.contains(":focus-visible"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_reach_the_event_stream_and_it_ends_at_shutdown() {
        let (addr, _app, changes, stop) = serve().await;
        let reader = tokio::task::spawn_blocking(move || get(addr, "/events", Some("data: 3")));
        // Sent until the stream has subscribed and passed it on.
        let sender = tokio::spawn(async move {
            loop {
                let _ = changes.send(Change::Stored(3));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let (head, body) = tokio::time::timeout(Duration::from_secs(10), reader).await.unwrap().unwrap();
        sender.abort();
        assert!(head.starts_with("HTTP/1.1 200") && head.contains("text/event-stream"), "{head}");
        assert!(body.contains("event: change\ndata: 3\n"), "{body}");

        // A stream open at shutdown ends (the server can stop).
        let (mut stream, _) = {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(s, "GET /events HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
            (s, ())
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.send(true).unwrap();
        let ended = tokio::task::spawn_blocking(move || {
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut raw = Vec::new();
            let _ = stream.read_to_end(&mut raw);
            String::from_utf8_lossy(&raw).into_owned()
        });
        let text = tokio::time::timeout(Duration::from_secs(10), ended).await.unwrap().unwrap();
        assert!(text.ends_with("0\r\n\r\n"), "the chunked stream ended: {text:?}");
    }
}
