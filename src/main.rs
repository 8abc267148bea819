//! The `sluice` command: token counting, trimming, routing and the HTTP server.
//!
//! This binary is wiring only: arguments are parsed here and handed to the
//! libraries (`sluice-core`, `sluice-router`, `sluice-practice`, `sluice-http`).

mod admin;
mod admin_usage;
mod batch;
mod config;
mod healthcheck;
#[cfg(feature = "local")]
mod model;
mod practice;
mod route;
mod serve;
mod trim;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Deterministic token counting, sliding-window trimming and routing for chat models.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Count the tokens of chat messages (like CLOVA's chat-tokenize API).
    Count(trim::CountArgs),
    /// Trim chat histories to fit a model's context (like CLOVA's sliding window).
    Trim(trim::TrimArgs),
    /// Route queries to domains and run content and safety filters.
    Route(route::RouteArgs),
    /// Run the HTTP server.
    Serve(serve::ServeArgs),
    /// Manage practice users, keys, classes and libraries in the store.
    Admin(admin::AdminArgs),
    /// Practice sessions: one prompt to several models at once.
    #[command(subcommand)]
    Practice(practice::PracticeCommand),
    /// Tokenizer utilities.
    #[command(subcommand)]
    Tokenizer(trim::TokenizerCommand),
    /// Show the effective server configuration, check a file, or list every key.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Exit 0 if a URL answers 200 (a container's HEALTHCHECK).
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Local models: fetch one into the model cache.
    #[cfg(feature = "local")]
    #[command(subcommand)]
    Model(model::ModelCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Count(args) => trim::count(args),
        Command::Trim(args) => trim::trim(args),
        Command::Route(args) => route::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Admin(args) => admin::run(args),
        Command::Practice(command) => practice::run(command),
        Command::Tokenizer(cmd) => trim::tokenizer(cmd),
        Command::Config(command) => config::run(command),
        Command::Healthcheck(args) => healthcheck::run(args),
        #[cfg(feature = "local")]
        Command::Model(command) => model::run(command),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`sluice trim big.jsonl | head`) is not a failure.
            if err
                .chain()
                .filter_map(|e| e.downcast_ref::<std::io::Error>())
                .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            ExitCode::from(2)
        }
    }
}
