//! End-to-end tests of the `sluice` binary, compiled into one test binary.

mod cli;
mod practice;
mod readme;
mod roundtrip;
mod serve;
