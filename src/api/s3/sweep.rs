//! The daemon's S3 sweep: every few seconds, whatever the clock has made due in any
//! bucket of any account is carried out, whether or not a request names the bucket.
//! That is lifecycle actions (expirations, transitions, noncurrent versions, expired
//! delete markers, incomplete multipart uploads) and the end of restores (completion,
//! then expiry of the temporary copy), with the events S3 sends for them.
//!
//! S3 runs lifecycle once a day and finishes restores minutes to hours after the
//! request; vpclab's clock compresses restores to seconds (docs/fidelity.md), so the
//! sweep runs every [`DEFAULT_INTERVAL`]. What to do and when is the model's
//! ([`World::s3_due_buckets`], [`World::settle_bucket`]); this module only decides when
//! to ask, and makes each bucket's work one commit through the same door as a request
//! (so change events, durability and the deletion of freed blobs are the same).
//!
//! Cheap when nothing is due: for each account the sweep keeps the world it last
//! looked at and the next moment anything may become due there
//! ([`World::s3_next_due`]). While the world is the same snapshot and that moment has
//! not come, the account costs one pointer comparison.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::mutate;
use crate::api::AppState;
use crate::model::{Env, World};

/// The action name of the sweep's commits (and of a request's own settling). Also
/// what replication reads to leave lifecycle delete markers alone.
pub const ACTION: &str = "vpclab:S3Lifecycle";

/// How often the daemon sweeps unless told otherwise: short enough that a restore's
/// compressed seconds are seen to pass, long enough to cost nothing.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);

/// The sweep's memory between runs.
#[derive(Default)]
pub struct Sweeper {
    /// Per account: the world last looked at, and the first moment after that look at
    /// which something may become due in it (`None`: never, until the world changes).
    seen: BTreeMap<String, (Arc<World>, Option<i64>)>,
}

impl Sweeper {
    /// One run over every account, at the daemon's clock. Returns how many buckets
    /// were settled (had something carried out).
    pub fn sweep(&mut self, state: &AppState) -> usize {
        let now = (state.clock)();
        let accounts = state.lock().accounts();
        let mut settled = 0;
        for account in accounts {
            let Some(world) = state.lock().snapshot(&account) else {
                continue;
            };
            if let Some((seen, next)) = self.seen.get(&account)
                && Arc::ptr_eq(seen, &world)
                && next.is_none_or(|t| now.0 < t)
            {
                continue;
            }
            for (bucket, region) in world.s3_due_buckets(now) {
                let env = Env::new(region, now).with_action(ACTION);
                let done = mutate(state, &account, &env, |w, env| {
                    Ok(((), w.settle_bucket(env, &bucket)?))
                });
                match done {
                    Ok(()) => settled += 1,
                    // Internal: the model refused its own plan. Logged, and tried again
                    // when the world changes or the next moment comes.
                    Err(e) => tracing::error!(
                        account = %account,
                        bucket = %bucket,
                        code = %e.code,
                        message = %e.message,
                        "the S3 sweep could not settle a bucket"
                    ),
                }
            }
            if let Some(world) = state.lock().snapshot(&account) {
                let next = world.s3_next_due(now);
                self.seen.insert(account, (world, next));
            }
        }
        settled
    }
}
