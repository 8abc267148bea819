//! Integration tests of sluice-practice.

mod backends;
mod leaderboard;
mod providers;
mod store;
mod support;
mod votes;
