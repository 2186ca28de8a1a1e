//! The [`KeyStore`] of IAM users' access keys and STS sessions: an index by access key
//! id kept current by a control subscriber from the commits that touch `iam_access_key`
//! or `sts_session` rows (and, on start, from the stored worlds' `vpclab:Load`
//! commits), so a lookup on every request is one hash-map read, never a scan.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::api::sigv4::{KeyRecord, KeyStore, Principal};
use crate::model::iam::{AccessKey, Session};
use crate::model::{ChangeOp, Resource, Subscriber, Timestamp};

#[derive(Default)]
pub struct IamKeys {
    map: RwLock<HashMap<String, KeyRecord>>,
}

impl KeyStore for IamKeys {
    fn find(&self, access_key: &str) -> Option<KeyRecord> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(access_key)
            .cloned()
    }
}

impl IamKeys {
    pub fn new() -> Arc<IamKeys> {
        Arc::new(IamKeys::default())
    }

    /// How many keys the index holds (tests, status).
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The subscriber that keeps the index current.
    pub fn subscriber(self: &Arc<Self>) -> Subscriber {
        let me = self.clone();
        Box::new(move |commit, world| {
            let kinds = [AccessKey::KIND, Session::KIND];
            if !commit.touches(&kinds) {
                return;
            }
            let mut map = me.map.write().unwrap_or_else(|e| e.into_inner());
            for change in commit.of_kind(AccessKey::KIND) {
                let key = (change.op != ChangeOp::Deleted)
                    .then(|| world.iam_access_keys.get(&change.id))
                    .flatten()
                    .filter(|k| k.active);
                match key {
                    Some(k) => {
                        let name = world
                            .iam_users
                            .get(&k.user)
                            .map(|u| u.name.clone())
                            .unwrap_or_default();
                        map.insert(
                            k.id.clone(),
                            KeyRecord {
                                secret_key: k.secret.clone(),
                                account: commit.account.clone(),
                                principal: Principal::User(name),
                                session_token: None,
                                expires: None,
                            },
                        );
                    }
                    None => {
                        map.remove(&change.id);
                    }
                }
            }
            for change in commit.of_kind(Session::KIND) {
                let session = (change.op != ChangeOp::Deleted)
                    .then(|| world.sts_sessions.get(&change.id))
                    .flatten();
                match session {
                    Some(s) => {
                        map.insert(
                            s.id.clone(),
                            KeyRecord {
                                secret_key: s.secret.clone(),
                                account: commit.account.clone(),
                                principal: Principal::AssumedRole {
                                    role: s.role_name.clone(),
                                    session: s.session_name.clone(),
                                },
                                session_token: Some(s.token.clone()),
                                expires: Some(Timestamp(s.expires)),
                            },
                        );
                    }
                    None => {
                        map.remove(&change.id);
                    }
                }
            }
        })
    }
}
