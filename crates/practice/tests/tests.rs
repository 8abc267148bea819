//! Integration tests of sluice-practice.

mod backends;
mod providers;
mod store;
mod support;
