//! End-to-end tests of the `sluice` binary, compiled into one test binary.

mod architecture;
mod budgets;
mod cli;
mod export;
mod first_run;
#[cfg(feature = "local")]
mod local_model;
mod practice;
mod readme;
mod roundtrip;
mod serve;
