//! Integration tests of sluice-practice.

mod backends;
mod export;
mod instructors;
mod leaderboard;
mod providers;
mod store;
mod support;
mod votes;
