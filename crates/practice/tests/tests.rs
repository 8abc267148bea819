//! Integration tests of sluice-practice.

mod backends;
mod instructors;
mod providers;
mod store;
mod support;
