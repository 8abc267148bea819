//! Integration tests of sluice-http: in-process (`oneshot`) and over 127.0.0.1:0.

mod auth;
mod bad_input;
mod config;
mod endpoints;
mod gateway;
mod limits;
mod openapi;
mod ops;
mod practice;
mod router;
mod support;
