//! The DNS engine on its own (no daemon): answers, zones, resolvers.

mod engine;
