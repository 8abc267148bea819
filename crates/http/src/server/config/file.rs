//! The configuration file's keys as they are spelled: one flat table, where
//! the practice keys sit beside the server's. [`Config`] is read through it,
//! so the file format (and every error serde gives for it) is the one table
//! while [`Config`] keeps the practice part as a [`Settings`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use sluice_practice::Settings;
use sluice_practice::provider::ModelConfig;

use super::{Config, LogFormat};
use crate::server::auth::ApiKeys;

/// Every key of the file, in the order serde lists them in errors.
#[derive(Debug, Deserialize)]
#[serde(rename = "Config", default, deny_unknown_fields)]
pub(super) struct ConfigFile {
    addr: SocketAddr,
    api_keys: ApiKeys,
    profiles: Option<PathBuf>,
    routers: Option<PathBuf>,
    body_limit: usize,
    body_timeout_ms: u64,
    request_timeout_ms: u64,
    concurrency_limit: usize,
    max_connections: usize,
    header_timeout_ms: u64,
    max_header_bytes: usize,
    drain_ms: u64,
    shutdown_timeout_ms: u64,
    token_ttl_ms: u64,
    log_format: LogFormat,
    log_requests_per_sec: u32,
    database: Option<String>,
    data_dir: Option<PathBuf>,
    practice_router: Option<String>,
    cors_origins: Vec<String>,
    models: BTreeMap<String, ModelConfig>,
}

impl From<ConfigFile> for Config {
    fn from(file: ConfigFile) -> Self {
        Config {
            addr: file.addr,
            api_keys: file.api_keys,
            profiles: file.profiles,
            routers: file.routers,
            body_limit: file.body_limit,
            body_timeout_ms: file.body_timeout_ms,
            request_timeout_ms: file.request_timeout_ms,
            concurrency_limit: file.concurrency_limit,
            max_connections: file.max_connections,
            header_timeout_ms: file.header_timeout_ms,
            max_header_bytes: file.max_header_bytes,
            drain_ms: file.drain_ms,
            shutdown_timeout_ms: file.shutdown_timeout_ms,
            token_ttl_ms: file.token_ttl_ms,
            log_format: file.log_format,
            log_requests_per_sec: file.log_requests_per_sec,
            cors_origins: file.cors_origins,
            practice: Settings {
                database: file.database,
                data_dir: file.data_dir,
                router: file.practice_router,
                models: file.models,
            },
        }
    }
}

/// A key left out of the file has its [`Config::default`] value.
impl Default for ConfigFile {
    fn default() -> Self {
        let config = Config::default();
        ConfigFile {
            addr: config.addr,
            api_keys: config.api_keys,
            profiles: config.profiles,
            routers: config.routers,
            body_limit: config.body_limit,
            body_timeout_ms: config.body_timeout_ms,
            request_timeout_ms: config.request_timeout_ms,
            concurrency_limit: config.concurrency_limit,
            max_connections: config.max_connections,
            header_timeout_ms: config.header_timeout_ms,
            max_header_bytes: config.max_header_bytes,
            drain_ms: config.drain_ms,
            shutdown_timeout_ms: config.shutdown_timeout_ms,
            token_ttl_ms: config.token_ttl_ms,
            log_format: config.log_format,
            log_requests_per_sec: config.log_requests_per_sec,
            database: config.practice.database,
            data_dir: config.practice.data_dir,
            practice_router: config.practice.router,
            cors_origins: config.cors_origins,
            models: config.practice.models,
        }
    }
}
