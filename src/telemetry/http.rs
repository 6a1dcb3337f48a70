//! The service's HTTP side: the Prometheus recorder and an axum server with
//! `GET /metrics`, `GET /healthz` and `GET /readyz`.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use tillsyn::telemetry::{Health, install_recorder, serve};
//! let handle = install_recorder()?; // once, before any metric is emitted
//! let health = Health::new(); // live, not ready ("starting")
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:9464").await?;
//! let server = tokio::spawn(serve(listener, handle, health.clone(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! }));
//! // ... once partitions are assigned and engines are running:
//! health.set_ready(true);
//! server.await??;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics::gauge;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use super::names;

/// Content type of the Prometheus text exposition format 0.0.4.
pub const EXPOSITION_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often [`serve`] runs the recorder's upkeep (draining histogram
/// samples into buckets), which bounds the memory held by samples between
/// scrapes: about 8 bytes per record processed in one period.
pub const UPKEEP_PERIOD: Duration = Duration::from_secs(1);

/// The reason `/readyz` gives before the first [`Health::set_ready`].
const STARTING: &str = "starting";
/// The reason `/readyz` gives after `set_ready(false)`.
const NOT_READY: &str = "not ready";

/// Liveness and readiness of the service, shared between the code that
/// knows (the Kafka loop) and the HTTP server. Cheap to clone: clones share
/// the same state. A new `Health` is live and not ready.
#[derive(Debug, Clone)]
pub struct Health {
    inner: Arc<HealthInner>,
}

#[derive(Debug)]
struct HealthInner {
    live: AtomicBool,
    ready: AtomicBool,
    /// Why not ready (meaningful while `ready` is false).
    reason: Mutex<&'static str>,
    /// What the beats are measured from.
    born: Instant,
    /// Each loop's last beat, in milliseconds since `born`; `u64::MAX`
    /// while it is not watched.
    beats: [AtomicU64; Loop::ALL.len()],
    /// How long a watched loop may go without a beat before `/healthz`
    /// reports it stuck (milliseconds; 0: not set, never stuck).
    stuck_after_ms: AtomicU64,
}

/// A loop of the service whose progress `/healthz` watches: if a watched
/// loop has not beaten for the configured time, the process is stuck
/// (a deadlock, a call that never returns) and `/healthz` answers 503, so
/// that the orchestrator restarts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loop {
    /// The processing loop: records, deliveries, rebalances, checkpoints
    /// (beats at least every tick, 250 ms).
    Processing,
    /// The consumer thread that polls Kafka (beats every poll, 50 ms,
    /// unless the processing loop is not taking its records).
    Consumer,
}

impl Loop {
    /// Every loop.
    pub const ALL: [Loop; 2] = [Loop::Processing, Loop::Consumer];

    /// Lowercase name for the `loop` label and `/healthz`.
    pub fn name(self) -> &'static str {
        match self {
            Loop::Processing => "processing",
            Loop::Consumer => "consumer",
        }
    }
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

impl Health {
    /// Live, not ready (reason "starting").
    pub fn new() -> Self {
        Health {
            inner: Arc::new(HealthInner {
                live: AtomicBool::new(true),
                ready: AtomicBool::new(false),
                reason: Mutex::new(STARTING),
                born: Instant::now(),
                beats: Loop::ALL.map(|_| AtomicU64::new(u64::MAX)),
                stuck_after_ms: AtomicU64::new(0),
            }),
        }
    }

    /// Reports loops that go `stuck_after` without a beat as stuck (from
    /// their first beat on).
    pub fn set_stuck_after(&self, stuck_after: Duration) {
        let ms = u64::try_from(stuck_after.as_millis()).unwrap_or(u64::MAX).max(1);
        self.inner.stuck_after_ms.store(ms, Ordering::Release);
    }

    /// `which` made progress now; watched from its first beat on.
    pub fn beat(&self, which: Loop) {
        self.beat_at(which, Instant::now());
    }

    /// `which` will not beat any more (it stopped on purpose).
    pub fn unwatch(&self, which: Loop) {
        self.inner.beats[which as usize].store(u64::MAX, Ordering::Release);
    }

    fn beat_at(&self, which: Loop, now: Instant) {
        let ms = u64::try_from(now.saturating_duration_since(self.inner.born).as_millis()).unwrap_or(u64::MAX - 1);
        self.inner.beats[which as usize].store(ms, Ordering::Release);
    }

    /// How long ago each watched loop beat last, at `now`.
    pub fn since_beats(&self, now: Instant) -> Vec<(Loop, Duration)> {
        let now_ms = u64::try_from(now.saturating_duration_since(self.inner.born).as_millis()).unwrap_or(u64::MAX);
        Loop::ALL
            .into_iter()
            .filter_map(|l| match self.inner.beats[l as usize].load(Ordering::Acquire) {
                u64::MAX => None,
                beat => Some((l, Duration::from_millis(now_ms.saturating_sub(beat)))),
            })
            .collect()
    }

    /// Sets [`names::SERVICE_READY`] and, for each watched loop,
    /// [`names::LOOP_SECONDS_SINCE_PROGRESS`] as of `now` (on every scrape).
    pub fn emit_gauges(&self, now: Instant) {
        gauge!(names::SERVICE_READY).set(if self.is_ready() { 1.0 } else { 0.0 });
        for (which, since) in self.since_beats(now) {
            gauge!(names::LOOP_SECONDS_SINCE_PROGRESS, "loop" => which.name()).set(since.as_secs_f64());
        }
    }

    /// `Ok` when live at `now`, else why not: marked not live, or a watched
    /// loop without a beat for longer than the limit.
    pub fn liveness_at(&self, now: Instant) -> Result<(), String> {
        if !self.is_live() {
            return Err("not live".into());
        }
        let limit = self.inner.stuck_after_ms.load(Ordering::Acquire);
        if limit > 0 {
            for (which, since) in self.since_beats(now) {
                if since.as_millis() > u128::from(limit) {
                    return Err(format!("{} loop stuck: no progress for {} s", which.name(), since.as_secs()));
                }
            }
        }
        Ok(())
    }

    /// Marks the service ready or not ready (reason "not ready"; use
    /// [`set_not_ready`](Self::set_not_ready) to say why). Also sets the
    /// [`names::SERVICE_READY`] gauge.
    pub fn set_ready(&self, ready: bool) {
        if ready {
            self.inner.ready.store(true, Ordering::Release);
            gauge!(names::SERVICE_READY).set(1.0);
        } else {
            self.set_not_ready(NOT_READY);
        }
    }

    /// Marks the service not ready, with a short reason for `/readyz`
    /// ("no partitions assigned", "shutting down"). `'static` so that it
    /// cannot carry data.
    pub fn set_not_ready(&self, reason: &'static str) {
        *self.inner.reason.lock().unwrap_or_else(PoisonError::into_inner) = reason;
        self.inner.ready.store(false, Ordering::Release);
        gauge!(names::SERVICE_READY).set(0.0);
    }

    /// Marks the process live (`/healthz` 200) or not (503: restart me).
    pub fn set_live(&self, live: bool) {
        self.inner.live.store(live, Ordering::Release);
    }

    /// Whether the process is live.
    pub fn is_live(&self) -> bool {
        self.inner.live.load(Ordering::Acquire)
    }

    /// Whether the service is ready.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// `Ok` when ready, else why not.
    pub fn readiness(&self) -> Result<(), &'static str> {
        if self.is_ready() { Ok(()) } else { Err(*self.inner.reason.lock().unwrap_or_else(PoisonError::into_inner)) }
    }
}

/// The recorder's configuration: [`names::RECORD_PROCESSING_SECONDS`] as a
/// histogram with [`names::LATENCY_BUCKETS`]. Used by [`install_recorder`];
/// tests build local recorders from it (`builder()?.build_recorder()`).
pub fn builder() -> anyhow::Result<PrometheusBuilder> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(names::RECORD_PROCESSING_SECONDS.to_owned()), names::LATENCY_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(names::SINK_ALERT_TO_ROW_SECONDS.to_owned()),
                names::SINK_LATENCY_BUCKETS,
            )
        })
        .context("configuring the latency histogram buckets")
}

/// Installs the Prometheus recorder as the global `metrics` recorder,
/// describes every metric ([`describe_all`](super::describe_all)) and
/// returns the handle [`serve`] renders from. Call it once, before any
/// metric is emitted (earlier emissions go nowhere); a second call fails.
pub fn install_recorder() -> anyhow::Result<PrometheusHandle> {
    let handle = builder()?.install_recorder().context("installing the Prometheus recorder")?;
    super::describe_all();
    gauge!(names::ASSIGNED_PARTITIONS).set(0.0);
    gauge!(names::SERVICE_READY).set(0.0);
    Ok(handle)
}

#[derive(Clone)]
struct AppState {
    handle: PrometheusHandle,
    health: Health,
}

/// The routes, for embedding in another axum server: `GET /metrics`,
/// `GET /healthz`, `GET /readyz`. [`serve`] serves exactly this (and runs
/// the recorder's upkeep).
pub fn router(handle: PrometheusHandle, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics_endpoint))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { handle, health })
}

/// Serves [`router`] on `listener` until `shutdown` completes, then stops
/// accepting and finishes the requests in flight. Runs the recorder's
/// upkeep every [`UPKEEP_PERIOD`] meanwhile.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr().context("reading the metrics listener's address")?;
    // Aborted when this future completes or is dropped.
    let _upkeep = AbortOnDrop(tokio::spawn(upkeep(handle.clone())));
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    let result = axum::serve(listener, router(handle, health)).with_graceful_shutdown(shutdown).await;
    tracing::info!(%addr, "metrics server stopped");
    result.with_context(|| format!("serving metrics on {addr}"))
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn upkeep(handle: PrometheusHandle) {
    let mut ticks = tokio::time::interval(UPKEEP_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        handle.run_upkeep();
    }
}

async fn metrics_endpoint(State(state): State<AppState>) -> impl IntoResponse {
    state.health.emit_gauges(Instant::now());
    ([(header::CONTENT_TYPE, EXPOSITION_CONTENT_TYPE)], state.handle.render())
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.health.liveness_at(Instant::now()) {
        Ok(()) => (StatusCode::OK, [(header::CONTENT_TYPE, TEXT)], "ok\n".to_owned()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, TEXT)], format!("{why}\n")),
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.health.readiness() {
        Ok(()) => (StatusCode::OK, [(header::CONTENT_TYPE, TEXT)], "ready\n".to_owned()),
        Err(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, TEXT)], format!("not ready: {reason}\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::events::RecordConsumed;
    use std::io::{Read, Write};
    use std::net::SocketAddr;
    use tillsyn_core::engine::Input;

    /// A response as read off the wire.
    struct Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Response {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        }
    }

    /// `GET path` over a fresh HTTP/1.1 connection, by hand.
    fn raw_get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        let text = String::from_utf8(raw).map_err(|e| std::io::Error::other(e.to_string()))?;
        let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| std::io::Error::other("no header end"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let mut response = Response { status, headers, body: body.to_owned() };
        if response.header("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
            response.body = dechunk(&response.body)?;
        } else if let Some(len) = response.header("content-length") {
            let len: usize = len.parse().map_err(|_| std::io::Error::other("bad content-length"))?;
            assert_eq!(response.body.len(), len, "body length differs from content-length");
        }
        Ok(response)
    }

    fn dechunk(mut chunked: &str) -> std::io::Result<String> {
        let mut body = String::new();
        loop {
            let (size, rest) = chunked.split_once("\r\n").ok_or_else(|| std::io::Error::other("bad chunk"))?;
            let size = usize::from_str_radix(size.trim(), 16).map_err(|_| std::io::Error::other("bad chunk size"))?;
            if size == 0 {
                return Ok(body);
            }
            body.push_str(rest.get(..size).ok_or_else(|| std::io::Error::other("short chunk"))?);
            chunked = rest.get(size + 2..).ok_or_else(|| std::io::Error::other("short chunk"))?;
        }
    }

    async fn get(addr: SocketAddr, path: &'static str) -> Response {
        match tokio::task::spawn_blocking(move || raw_get(addr, path)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => panic!("GET {path}: {e}"),
            Err(e) => panic!("GET {path} task: {e}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_metrics_health_and_readiness_then_shuts_down() {
        let recorder = builder().expect("builder").build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            crate::telemetry::describe_all();
            RecordConsumed { topic: "time-reports", kind: Input::TimeReports }.emit();
        });

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let health = Health::new();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, handle, health.clone(), async move {
            let _ = stopped.await;
        }));

        let metrics = get(addr, "/metrics").await;
        assert_eq!(metrics.status, 200);
        let content_type = metrics.header("content-type").unwrap_or_default();
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "content-type {content_type:?}");
        assert!(
            metrics
                .body
                .lines()
                .any(|l| l == r#"tillsyn_consumed_records_total{topic="time-reports",kind="time_report"} 1"#),
            "exposition lacks the consumed counter:\n{}",
            metrics.body
        );
        assert!(metrics.body.contains("# TYPE tillsyn_consumed_records_total counter"), "{}", metrics.body);

        let healthz = get(addr, "/healthz").await;
        assert_eq!((healthz.status, healthz.body.as_str()), (200, "ok\n"));

        let readyz = get(addr, "/readyz").await;
        assert_eq!((readyz.status, readyz.body.as_str()), (503, "not ready: starting\n"));

        health.set_ready(true);
        let readyz = get(addr, "/readyz").await;
        assert_eq!((readyz.status, readyz.body.as_str()), (200, "ready\n"));

        health.set_not_ready("no partitions assigned");
        let readyz = get(addr, "/readyz").await;
        assert_eq!((readyz.status, readyz.body.as_str()), (503, "not ready: no partitions assigned\n"));
        health.set_ready(false);
        assert_eq!(get(addr, "/readyz").await.body, "not ready: not ready\n");

        // A watched loop that stops beating makes the process not live.
        health.set_stuck_after(Duration::from_millis(300));
        health.beat(Loop::Processing);
        assert_eq!(get(addr, "/healthz").await.status, 200);
        tokio::time::sleep(Duration::from_millis(600)).await;
        let healthz = get(addr, "/healthz").await;
        assert_eq!(healthz.status, 503);
        assert!(healthz.body.starts_with("processing loop stuck: no progress for"), "{}", healthz.body);
        health.beat(Loop::Processing);
        assert_eq!(get(addr, "/healthz").await.status, 200, "live again after a beat");

        health.set_live(false);
        let healthz = get(addr, "/healthz").await;
        assert_eq!((healthz.status, healthz.body.as_str()), (503, "not live\n"));

        assert_eq!(get(addr, "/nothing-here").await.status, 404);

        stop.send(()).expect("server still running");
        match tokio::time::timeout(Duration::from_secs(5), server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => panic!("serve failed: {e:#}"),
            Ok(Err(e)) => panic!("serve task: {e}"),
            Err(_) => panic!("serve did not stop within 5 s of the shutdown signal"),
        }
        let refused = tokio::task::spawn_blocking(move || std::net::TcpStream::connect(addr)).await.expect("task");
        assert!(refused.is_err(), "still accepting connections after shutdown");
    }

    #[test]
    fn health_starts_live_and_not_ready_and_clones_share_state() {
        let health = Health::default();
        assert!(health.is_live());
        assert_eq!(health.readiness(), Err("starting"));
        let clone = health.clone();
        clone.set_ready(true);
        assert!(health.is_ready());
        assert_eq!(health.readiness(), Ok(()));
        clone.set_live(false);
        assert!(!health.is_live());
    }

    #[test]
    fn a_loop_is_stuck_only_when_watched_and_silent_past_the_limit() {
        let health = Health::new();
        let t0 = health.inner.born;
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        assert_eq!(health.liveness_at(at(10_000)), Ok(()), "nothing watched yet");
        health.beat_at(Loop::Consumer, at(10));
        assert_eq!(health.liveness_at(at(10_000)), Ok(()), "no limit set: never stuck");
        health.set_stuck_after(Duration::from_secs(60));
        health.beat_at(Loop::Processing, at(100));
        health.beat_at(Loop::Consumer, at(100));
        assert_eq!(health.liveness_at(at(160)), Ok(()), "at the limit");
        assert_eq!(health.liveness_at(at(161)), Err("processing loop stuck: no progress for 61 s".into()));
        health.beat_at(Loop::Processing, at(161));
        assert_eq!(health.liveness_at(at(171)), Err("consumer loop stuck: no progress for 71 s".into()));
        health.unwatch(Loop::Consumer);
        assert_eq!(health.liveness_at(at(171)), Ok(()), "a loop stopped on purpose is not watched");
        assert_eq!(health.since_beats(at(171)), vec![(Loop::Processing, Duration::from_secs(10))]);
    }

    #[test]
    fn health_sets_the_ready_gauge() {
        let recorder = builder().expect("builder").build_recorder();
        let health = Health::new();
        let line = |handle: &PrometheusHandle| {
            handle.render().lines().find(|l| l.starts_with(names::SERVICE_READY)).map(str::to_owned)
        };
        metrics::with_local_recorder(&recorder, || health.set_ready(true));
        assert_eq!(line(&recorder.handle()).as_deref(), Some("tillsyn_service_ready 1"));
        metrics::with_local_recorder(&recorder, || health.set_not_ready("draining"));
        assert_eq!(line(&recorder.handle()).as_deref(), Some("tillsyn_service_ready 0"));
    }
}
