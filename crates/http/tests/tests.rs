//! Integration tests of sluice-http: in-process (`oneshot`) and over 127.0.0.1:0.

mod auth;
mod bad_input;
mod config;
mod connection;
mod cors;
mod endpoints;
/// The scripted fake upstream model server of sluice-practice's tests.
#[path = "../../practice/tests/support.rs"]
#[allow(dead_code)]
mod fake;
mod faults;
mod gateway;
/// The one practice server of the tests and benches (some options serve
/// only the benches).
#[allow(dead_code)]
mod harness;
mod hostile;
mod instructors;
mod limits;
mod malformed;
mod openapi;
mod ops;
mod practice;
mod reveal;
mod roundtrip;
mod router;
mod support;
mod votes;
mod web;
