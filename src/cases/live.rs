//! The view's connection to the case store, and its live updates.
//!
//! One connection, kept open and opened again with a backoff when it
//! breaks: the pages' queries go over it, and it `LISTEN`s on
//! [`CHANGES_CHANNEL`], on which `tillsyn sink postgres` notifies every
//! committed batch (the payload is the number of new alert rows). The
//! connection is driven here, by polling it for its messages
//! (`Connection::poll_message`), so that notifications are seen; each one
//! goes to every open page through a broadcast channel and `GET /events`
//! (Server-Sent Events). After a reconnection the pages are told to
//! re-read (`resync`): notifications sent meanwhile were lost.
//!
//! The session is read-only (`SET SESSION CHARACTERISTICS AS TRANSACTION
//! READ ONLY`): the view never writes, whatever role it connects as.

use std::convert::Infallible;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use tokio::sync::{broadcast, watch};
use tokio_postgres::{AsyncMessage, Client, NoTls};
use tracing::{debug, info, warn};

use super::{App, store};
use crate::sink::postgres::store::CHANGES_CHANNEL;
use crate::telemetry::Health;

/// The first wait after a failed connection; it doubles up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between two connection attempts.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How often an idle event stream sends a comment, so that proxies keep it.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A change of the case store, for the open pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A batch committed this many new alert rows.
    Stored(u64),
    /// Changes may have been missed (a reconnection, a slow page): re-read.
    Resync,
}

/// The connection the handlers query over, while there is one.
#[derive(Default)]
pub struct Connection {
    client: RwLock<Option<Arc<Client>>>,
}

impl Connection {
    /// The client, if connected.
    pub fn client(&self) -> Option<Arc<Client>> {
        self.client.read().unwrap_or_else(PoisonError::into_inner).as_ref().filter(|c| !c.is_closed()).cloned()
    }

    fn set(&self, client: Option<Arc<Client>>) {
        *self.client.write().unwrap_or_else(PoisonError::into_inner) = client;
    }
}

/// Why a connection could not be used, as `/readyz` says it.
struct Unusable {
    reason: &'static str,
    error: anyhow::Error,
}

/// Keeps the connection open until `stop` turns true: connects, listens,
/// serves it to the handlers and forwards its notifications to `changes`;
/// when it breaks, reports not ready and connects again with a doubling
/// backoff.
pub async fn keep_connected(
    config: tokio_postgres::Config,
    connection: Arc<Connection>,
    changes: broadcast::Sender<Change>,
    health: Health,
    mut stop: watch::Receiver<bool>,
) {
    let mut wait = RETRY_FIRST;
    let mut connected_before = false;
    let mut failing = false;
    loop {
        if *stop.borrow() {
            break;
        }
        match connect(&config, changes.clone()).await {
            Ok((client, mut driver)) => {
                info!(channel = CHANGES_CHANNEL, "case store connected; listening for changes");
                connection.set(Some(Arc::new(client)));
                health.set_ready(true);
                if connected_before {
                    let _ = changes.send(Change::Resync);
                }
                connected_before = true;
                failing = false;
                wait = RETRY_FIRST;
                tokio::select! {
                    ended = &mut driver => match ended {
                        Ok(Ok(())) => warn!("the case store closed the connection"),
                        Ok(Err(e)) => warn!(error = %e, "the case store connection failed"),
                        Err(e) => warn!(error = %e, "the case store connection's task failed"),
                    },
                    _ = stop.changed() => {
                        driver.abort();
                        connection.set(None);
                        break;
                    }
                }
                connection.set(None);
                health.set_not_ready("the case store database is unavailable");
            }
            Err(Unusable { reason, error }) => {
                health.set_not_ready(reason);
                if failing {
                    debug!(error = format!("{error:#}"), "case store still unusable");
                } else {
                    warn!(error = format!("{error:#}"), "case store unusable; trying again");
                    failing = true;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
        wait = (wait * 2).min(RETRY_MAX);
    }
    health.set_not_ready("shutting down");
}

/// A connection, listening, read-only, on a schema the view can read; and
/// the task that drives it (its end is the connection's).
async fn connect(
    config: &tokio_postgres::Config,
    changes: broadcast::Sender<Change>,
) -> Result<(Client, tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>), Unusable> {
    let unavailable = |error: anyhow::Error| Unusable { reason: "the case store database is unavailable", error };
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| unavailable(e.into()))?;
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message? {
                AsyncMessage::Notification(n) if n.channel() == CHANGES_CHANNEL => {
                    let rows = n.payload().trim().parse().unwrap_or(0);
                    let _ = changes.send(Change::Stored(rows));
                }
                AsyncMessage::Notice(notice) => debug!(notice = notice.message(), "case store notice"),
                _ => {}
            }
        }
        Ok(())
    });
    let setup = async {
        client
            .batch_execute(&format!("LISTEN {CHANGES_CHANNEL}; SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"))
            .await
            .map_err(|e| unavailable(e.into()))?;
        match store::has_schema(&client).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Unusable {
                reason: "the case store has no tables yet",
                error: anyhow::anyhow!(
                    "no tables `episodes` and `alerts` on the search path: `tillsyn sink postgres` creates them"
                ),
            }),
            Err(e) => Err(unavailable(e.into())),
        }
    };
    match setup.await {
        Ok(()) => Ok((client, driver)),
        Err(e) => {
            driver.abort();
            Err(e)
        }
    }
}

/// `GET /events`: the store's changes as Server-Sent Events, `change`
/// (data: the number of new alerts) or `resync`; ends at shutdown.
pub async fn events(State(app): State<Arc<App>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    Sse::new(change_events(app.changes.subscribe(), app.stop.clone())).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// The events of `changes` until `stop` turns true or the channel closes.
fn change_events(
    changes: broadcast::Receiver<Change>,
    stop: watch::Receiver<bool>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold((changes, stop), |(mut changes, mut stop)| async move {
        if *stop.borrow() {
            return None;
        }
        let change = tokio::select! {
            received = changes.recv() => match received {
                Ok(change) => change,
                Err(broadcast::error::RecvError::Lagged(_)) => Change::Resync,
                Err(broadcast::error::RecvError::Closed) => return None,
            },
            _ = stop.changed() => return None,
        };
        let event = match change {
            Change::Stored(rows) => Event::default().event("change").data(rows.to_string()),
            Change::Resync => Event::default().event("resync").data("0"),
        };
        Some((Ok(event), (changes, stop)))
    })
}
