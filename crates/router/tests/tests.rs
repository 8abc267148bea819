//! Integration tests of sluice-router, compiled into one binary.

mod api;
mod cases;
mod config;
mod normalisation;
mod properties;
mod safety;
mod support;
