//! Push of credential changes between instances (docs/spec.md §12).
//!
//! On PostgreSQL every change that the instances' poll looks for (a key revoked or rolled, a
//! client deleted or its secret rotated, a grant or an access token revoked) also sends a
//! `NOTIFY tessera_changes`, from triggers (migration `change_notify`), delivered when its
//! transaction commits. Each instance keeps one extra connection that `LISTEN`s on that
//! channel, in a thread of its own, and wakes the change poll
//! (`startup::poll_credential_changes`) at once, so a revocation reaches the other
//! instances' caches in milliseconds instead of at the next tick.
//!
//! The poll stays the source of truth and the fallback: it still runs every
//! `--change-poll-interval-ms` (default 100) and acts on what the database says, so a lost
//! notification or a lost listening connection costs latency, never a missed revocation. On
//! every (re)connection the listener wakes the poll once, a resync for whatever happened
//! while it was away. A connection that fails is retried after 0.1 s, doubling up to 5 s.
//!
//! libpq reads notifications that have arrived on the socket without a round trip
//! (`PQconsumeInput`, non-blocking), so the thread checks its socket every
//! [`CHECK_EVERY`]: no query reaches the database while nothing changes.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use diesel::{Connection, PgConnection, RunQueryDsl};
use tokio::sync::Notify;

/// The `NOTIFY` channel the triggers send on.
pub const CHANNEL: &str = "tessera_changes";
/// How often the listening thread looks at its socket.
pub const CHECK_EVERY: Duration = Duration::from_millis(5);
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// The listening thread; dropping it stops the thread (within [`CHECK_EVERY`], or when a
/// blocked connection attempt returns).
#[derive(Debug)]
pub struct Listener {
    _stop: mpsc::Sender<()>,
}

/// Starts listening on `url` (a PostgreSQL URL with its client-side timeouts, see
/// `db::with_client_timeouts`); `wake` is notified once per burst of changes and once per
/// (re)connection. Errors only when the thread cannot be created.
pub fn listen(url: String, wake: Arc<Notify>) -> std::io::Result<Listener> {
    let (stop, stopped) = mpsc::channel::<()>();
    thread::Builder::new()
        .name("tessera-change-listener".into())
        .spawn(move || run(&url, &wake, &stopped))?;
    Ok(Listener { _stop: stop })
}

/// `true` while the listener should go on waiting `d`; `false` once it has been dropped.
fn wait(stopped: &mpsc::Receiver<()>, d: Duration) -> bool {
    matches!(stopped.recv_timeout(d), Err(RecvTimeoutError::Timeout))
}

fn run(url: &str, wake: &Notify, stopped: &mpsc::Receiver<()>) {
    let mut retry = FIRST_RETRY;
    let mut logged_failure = false;
    loop {
        match connect(url) {
            Ok(mut conn) => {
                if logged_failure {
                    tracing::info!("listening for credential changes again");
                }
                retry = FIRST_RETRY;
                // Resync: whatever changed while nobody listened.
                wake.notify_one();
                match receive(&mut conn, wake, stopped) {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "the change listener lost its connection; polling only until it is back");
                        logged_failure = true;
                    }
                }
            }
            Err(e) => {
                if !logged_failure {
                    tracing::warn!(error = %e, "cannot listen for credential changes; polling only until the database answers");
                    logged_failure = true;
                }
            }
        }
        if !wait(stopped, retry) {
            return;
        }
        retry = (retry * 2).min(LAST_RETRY);
    }
}

fn connect(url: &str) -> Result<PgConnection, String> {
    let mut conn = PgConnection::establish(url).map_err(|e| e.to_string())?;
    diesel::sql_query(format!("LISTEN {CHANNEL}"))
        .execute(&mut conn)
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Wakes the poll for each burst of notifications until stopped (`Ok`) or the connection
/// fails (`Err`).
fn receive(
    conn: &mut PgConnection,
    wake: &Notify,
    stopped: &mpsc::Receiver<()>,
) -> Result<(), String> {
    loop {
        let mut any = false;
        for n in conn.notifications_iter() {
            n.map_err(|e| e.to_string())?;
            any = true;
        }
        if any {
            wake.notify_one();
        }
        if !wait(stopped, CHECK_EVERY) {
            return Ok(());
        }
    }
}
