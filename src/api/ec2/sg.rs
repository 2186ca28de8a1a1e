//! (filled in below)

use super::Handler;

pub const ACTIONS: &[(&str, Handler)] = &[];
