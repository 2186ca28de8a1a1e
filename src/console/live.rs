//! Live updates: the model's change events, as server-sent events.
//!
//! [`Feed::subscriber`] is registered with the control like the DNS view and the world
//! runtime: every commit is handed to a broadcast channel (non-blocking, as subscribers
//! run under the control's lock). `GET /console/events` streams the commits of the
//! session's account as `event: change` with the action and what it touched; the page's
//! script then fetches the parts marked `data-live-src` again. A browser that falls
//! behind skips to the newest commit (one redraw shows the latest state anyway).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast;

use super::Console;
use crate::model::Commit;
use crate::model::change::{LOAD_ACTION, TICK_ACTION};

/// The fan-out of commits to open event streams.
#[derive(Clone)]
pub struct Feed {
    tx: broadcast::Sender<Arc<Commit>>,
    /// Set when the daemon stops: open streams end, so they do not hold up shutdown.
    closed: tokio::sync::watch::Sender<bool>,
}

impl Default for Feed {
    fn default() -> Feed {
        Feed {
            tx: broadcast::channel(256).0,
            closed: tokio::sync::watch::channel(false).0,
        }
    }
}

impl Feed {
    /// The control subscriber: forwards every commit (but the start-up announcements).
    pub fn subscriber(&self) -> crate::model::Subscriber {
        let tx = self.tx.clone();
        Box::new(move |commit, _world| {
            if commit.action != LOAD_ACTION && !commit.changes.is_empty() {
                // No open stream is not an error.
                let _ = tx.send(Arc::new(commit.clone()));
            }
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Commit>> {
        self.tx.subscribe()
    }

    /// Ends every open stream (the daemon is stopping).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }
}

/// The `data:` of one change event: the action and the resources it touched
/// (`CreateVpc: vpc vpc-0abc created`).
pub fn describe(c: &Commit) -> String {
    let what: Vec<String> = c
        .changes
        .iter()
        .filter(|ch| ch.kind != "tags")
        .take(4)
        .map(|ch| format!("{} {} {}", ch.kind, ch.id, ch.op.as_str()))
        .collect();
    let action = if c.action == TICK_ACTION {
        "a state change"
    } else {
        c.action.as_str()
    };
    format!(
        "{action}: {}{}",
        what.join(", "),
        if c.changes.len() > 4 { ", …" } else { "" }
    )
}

pub(crate) async fn events(State(c): State<Console>, headers: HeaderMap) -> Response {
    let ctx = match c.page_ctx(&headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let account = ctx.session.account;
    let rx = c.live.subscribe();
    let closed = c.live.closed.subscribe();
    let stream = futures_util::stream::unfold(
        (rx, account, closed),
        |(mut rx, account, mut closed)| async move {
            loop {
                if *closed.borrow() {
                    return None;
                }
                let next = tokio::select! {
                    r = rx.recv() => r,
                    _ = closed.changed() => return None,
                };
                match next {
                    Ok(commit) if commit.account == account => {
                        let ev = Event::default()
                            .event("change")
                            .id(commit.seq.to_string())
                            .data(describe(&commit));
                        return Some((Ok::<Event, Infallible>(ev), (rx, account, closed)));
                    }
                    Ok(_) => continue,
                    // Fell behind: the next commit's redraw shows the newest state.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
