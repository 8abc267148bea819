//! Configuration: file, environment overrides, and the loopback rule.

use sluice_http::{ApiKeys, AppState, Config, ConfigError, LogFormat};

#[test]
fn without_keys_only_loopback_is_allowed() {
    for addr in ["127.0.0.1:8080", "[::1]:8080", "127.0.0.2:0"] {
        let config = Config {
            addr: addr.parse().unwrap(),
            ..Config::default()
        };
        assert_eq!(config.validate(), Ok(()), "{addr}");
    }
    for addr in ["0.0.0.0:8080", "[::]:8080", "192.168.1.5:80"] {
        let config = Config {
            addr: addr.parse().unwrap(),
            ..Config::default()
        };
        let err = config.validate().unwrap_err();
        assert!(matches!(err, ConfigError::OpenWithoutKeys(_)), "{addr}");
        let text = err.to_string();
        assert!(
            text.contains("refusing") && text.contains("SLUICE_API_KEYS"),
            "{text}"
        );
        assert!(AppState::from_config(&config).is_err());
        // With a key, anywhere is fine.
        let config = Config {
            api_keys: ApiKeys::new(["k"]),
            ..config
        };
        assert_eq!(config.validate(), Ok(()), "{addr}");
    }
}

#[test]
fn defaults_listen_on_loopback_8080() {
    let config = Config::default();
    assert_eq!(config.addr.to_string(), "127.0.0.1:8080");
    assert!(config.api_keys.is_empty());
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn environment_overrides_the_file() {
    let dir = std::env::temp_dir().join(format!("sluice-http-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sluice.toml");
    std::fs::write(
        &file,
        "addr = \"127.0.0.1:9000\"\napi_keys = [\"from-file\"]\nprofiles = \"profiles.toml\"\nbody_limit = 4096\nlog_format = \"json\"\n",
    )
    .unwrap();
    let mut config = Config::from_file(&file).unwrap();
    assert_eq!(config.addr.port(), 9000);
    assert!(config.api_keys.verify("from-file"));
    assert_eq!(
        config.profiles.as_deref(),
        Some(dir.join("profiles.toml").as_path())
    );
    assert_eq!(config.body_limit, 4096);
    assert_eq!(config.log_format, LogFormat::Json);

    let env = |name: &str| match name {
        "SLUICE_ADDR" => Some("0.0.0.0:9001".to_string()),
        "SLUICE_API_KEYS" => Some(" a-key , b-key ,".to_string()),
        "SLUICE_CONCURRENCY_LIMIT" => Some("7".to_string()),
        "SLUICE_REQUEST_TIMEOUT_MS" => Some("1500".to_string()),
        _ => None,
    };
    config.apply_vars(env).unwrap();
    assert_eq!(config.addr.to_string(), "0.0.0.0:9001");
    assert_eq!(config.api_keys.len(), 2);
    assert!(config.api_keys.verify("b-key") && !config.api_keys.verify("from-file"));
    assert_eq!(config.limits().concurrency_limit, 7);
    assert_eq!(config.limits().request_timeout.as_millis(), 1500);
    assert_eq!(config.validate(), Ok(()));

    let bad =
        Config::default().apply_vars(|n| (n == "SLUICE_BODY_LIMIT").then(|| "lots".to_string()));
    assert!(bad.unwrap_err().to_string().contains("SLUICE_BODY_LIMIT"));

    std::fs::write(&file, "adress = \"127.0.0.1:1\"\n").unwrap();
    assert!(Config::from_file(&file).is_err(), "unknown keys are errors");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_debug_never_shows_keys() {
    let config = Config {
        api_keys: ApiKeys::new(["super-secret"]),
        ..Config::default()
    };
    assert!(!format!("{config:?}").contains("super-secret"));
}
