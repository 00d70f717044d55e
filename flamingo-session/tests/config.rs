//! `flamingo.session.*` through the `config` crate: defaults, spellings, environment overrides,
//! one test per bad value, and Flamingo's Redis URL-versus-key precedence.

use std::{path::PathBuf, time::Duration};

use config::{Config, Environment, File, FileFormat, Map};
use flamingo_session::config::{
    environment, BackendKind, ConfigError, RedisConfig, RedisConnection, SameSiteSetting, SaveMode,
    SessionConfig,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn from_fixture(name: &str) -> Result<SessionConfig, ConfigError> {
    let config = Config::builder()
        .add_source(File::from(fixture(name)))
        .build()
        .expect("the fixture parses");
    SessionConfig::from_config(&config)
}

fn from_yaml(yaml: &str) -> Result<SessionConfig, ConfigError> {
    from_yaml_and_env(yaml, &[])
}

fn vars(pairs: &[(&str, &str)]) -> Map<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn from_yaml_and_env(yaml: &str, env: &[(&str, &str)]) -> Result<SessionConfig, ConfigError> {
    let config = Config::builder()
        .add_source(File::from_str(yaml, FileFormat::Yaml))
        .add_source(environment().source(Some(vars(env))))
        .build()
        .expect("the YAML parses");
    SessionConfig::from_config(&config)
}

/// Loads `yaml`, expects an error, and checks that it names `key` and shows `value`.
#[track_caller]
fn rejects(yaml: &str, key: &str, value: &str) -> ConfigError {
    let error = from_yaml(yaml).expect_err("the value is rejected");
    assert_names(&error, key, value);
    error
}

#[track_caller]
fn assert_names(error: &ConfigError, key: &str, value: &str) {
    let shown = error.to_string();
    assert_eq!(error.key, key, "wrong key in {shown:?}");
    assert!(shown.starts_with(&format!("{key}: ")), "{shown:?}");
    assert!(shown.contains(value), "{shown:?} does not show {value:?}");
}

// ---------------------------------------------------------------------------------------------
// Defaults

#[test]
fn an_empty_configuration_gives_flamingos_defaults() {
    let session = from_yaml("").unwrap();
    assert_eq!(session, SessionConfig::default());
    assert_eq!(session.name, "flamingo");
    assert_eq!(session.save_mode, SaveMode::Always);
    assert_eq!(session.backend, BackendKind::Memory);
    assert_eq!(session.secret, "flamingosecret");
    assert!(session.healthcheck);
    assert_eq!(session.file, PathBuf::from("/sessions"));
    assert_eq!(session.file_cleanup_interval, Duration::from_secs(300));
    assert!(session.file_sync, "files are fsynced unless switched off");
    assert_eq!(session.store_length, 1_048_576);
    assert_eq!(session.max_age, Duration::from_secs(2_592_000));
    assert_eq!(session.memory_capacity, 1_000_000);
    assert!(session.cookie.secure);
    assert_eq!(session.cookie.path, "/");
    assert_eq!(session.cookie.same_site, SameSiteSetting::Lax);

    let redis = &session.redis;
    assert_eq!(redis.url, None);
    assert_eq!(redis.host, "redis");
    assert_eq!(redis.username, None);
    assert_eq!(redis.password, "");
    // Not Flamingo's 10: one multiplexed connection per worker thread (see RedisConfig).
    assert_eq!(redis.idle_connections, 1);
    assert_eq!(redis.database, 0);
    assert!(!redis.tls);
    assert_eq!(redis.tls_ca_file, None);
    assert!(!redis.cluster_mode);
    assert_eq!(redis.timeout, Duration::from_secs(5));
    assert_eq!(redis.key_prefix, "session:");
}

#[test]
fn the_default_redis_settings_resolve_to_host_redis() {
    let connection = RedisConfig::default().resolve().unwrap();
    assert_eq!(connection.hosts, ["redis:6379"]);
    assert_eq!(connection.username, None);
    assert_eq!(connection.password, "");
    assert_eq!(connection.database, 0);
    assert!(!connection.tls);
}

#[test]
fn null_means_not_set() {
    let session = from_yaml(
        "flamingo.session.redis.username: ~\nflamingo.session.backend: null\nflamingo.session.cookie:",
    )
    .unwrap();
    assert_eq!(session, SessionConfig::default());
    assert_eq!(
        from_yaml("flamingo.session: ~").unwrap(),
        SessionConfig::default()
    );
}

#[test]
fn keys_outside_flamingo_session_are_left_alone() {
    let session = from_yaml(
        "flamingo.debug.mode: true\nflamingo.sessions: 1\ncore.auth.web.broker: []\nbackend: x",
    )
    .unwrap();
    assert_eq!(session, SessionConfig::default());
}

// ---------------------------------------------------------------------------------------------
// Files and spellings

#[test]
fn the_yaml_block_from_flamingos_docs_loads_verbatim() {
    let session = from_fixture("flamingo-sessions.yml").unwrap();
    let redis = &session.redis;
    assert_eq!(
        redis.url.as_deref(),
        Some("redis://my-user:my-secret-password@my-redis/0")
    );
    assert_eq!(redis.host, "my-redis");
    assert_eq!(redis.username.as_deref(), Some("my-user"));
    assert_eq!(redis.password, "my-secret-password");
    assert_eq!(redis.database, 0);
    assert_eq!(redis.idle_connections, 10);
    assert!(redis.tls);
    assert!(!redis.cluster_mode);
    assert_eq!(redis.timeout, Duration::from_secs(5));
    assert_eq!(redis.key_prefix, "my-session-key-prefix:");

    assert_eq!(
        redis.resolve().unwrap(),
        RedisConnection {
            hosts: vec!["my-redis:6379".to_owned()],
            username: Some("my-user".to_owned()),
            password: "my-secret-password".to_owned(),
            database: 0,
            tls: true,
        }
    );
}

#[test]
fn nested_maps_set_every_key() {
    let session = from_fixture("nested.yml").unwrap();
    assert_eq!(session.name, "sid");
    assert_eq!(session.save_mode, SaveMode::OnWrite);
    assert_eq!(session.backend, BackendKind::Redis);
    assert_eq!(session.secret, "a-long-random-secret");
    assert!(!session.healthcheck);
    assert_eq!(session.file, PathBuf::from("/var/lib/sessions"));
    assert_eq!(session.file_cleanup_interval, Duration::from_secs(90));
    assert_eq!(session.store_length, 4096);
    assert_eq!(session.max_age, Duration::from_secs(3600));
    assert_eq!(session.memory_capacity, 500);
    assert!(session.cookie.secure);
    assert_eq!(session.cookie.path, "/app");
    assert_eq!(session.cookie.same_site, SameSiteSetting::None);

    let redis = &session.redis;
    assert_eq!(redis.url, None, "an empty URL is unset");
    assert_eq!(redis.host, "cache-1:7000, cache-2:7001");
    assert_eq!(redis.username.as_deref(), Some("app"));
    assert_eq!(redis.password, "pw");
    assert_eq!(redis.idle_connections, 20);
    assert_eq!(redis.database, 3);
    assert!(redis.tls);
    assert_eq!(
        redis.tls_ca_file,
        Some(PathBuf::from("/etc/ssl/private-ca.pem"))
    );
    assert!(redis.cluster_mode);
    assert_eq!(redis.timeout, Duration::from_secs(90));
    assert_eq!(redis.key_prefix, "app:sessions:", "the prefix is trimmed");

    let connection = redis.resolve().unwrap();
    assert_eq!(connection.hosts, ["cache-1:7000", "cache-2:7001"]);
    assert_eq!(connection.database, 0, "cluster mode has only database 0");
    assert!(connection.tls);
}

#[test]
fn dotted_keys_and_maps_mix_in_any_case() {
    let session = from_fixture("mixed.yml").unwrap();
    assert_eq!(session.backend, BackendKind::File);
    assert_eq!(session.max_age, Duration::from_secs(10));
    assert_eq!(session.cookie.same_site, SameSiteSetting::Strict);
    assert_eq!(session.save_mode, SaveMode::OnRead);
    assert_eq!(session.redis.host, "x");
    assert_eq!(session.store_length, 0);
    assert_eq!(session.redis.idle_connections, 3);
}

#[test]
fn toml_tables_and_dotted_keys_load() {
    let session = from_fixture("session.toml").unwrap();
    assert_eq!(session.backend, BackendKind::Redis);
    assert_eq!(session.max_age, Duration::from_secs(120));
    assert_eq!(session.save_mode, SaveMode::OnRead);
    assert_eq!(session.redis.timeout, Duration::from_millis(500));
    assert!(!session.cookie.secure);
    assert_eq!(session.cookie.same_site, SameSiteSetting::Default);
    let connection = session.redis.resolve().unwrap();
    assert_eq!(connection.hosts, ["cache.example:6380"]);
    assert_eq!(connection.password, "secret");
    assert_eq!(connection.database, 5);
    assert!(connection.tls, "rediss:// turns TLS on");
}

#[test]
fn the_examples_from_the_issue_all_set_the_same_keys() {
    for yaml in [
        "flamingo.session.redis.host: x\nflamingo.session.max.age: 10",
        "flamingo: {session: {redis: {host: x}, max: {age: 10}}}",
        "flamingo.session: {max.age: 10, redis.host: x}",
        "flamingo: {session.redis: {host: x}}\nflamingo.session.max: {age: 10}",
    ] {
        let session = from_yaml(yaml).unwrap_or_else(|e| panic!("{yaml:?}: {e}"));
        assert_eq!(session.redis.host, "x", "{yaml:?}");
        assert_eq!(session.max_age, Duration::from_secs(10), "{yaml:?}");
    }
}

#[test]
fn later_files_override_earlier_ones_with_the_same_spelling() {
    let config = Config::builder()
        .add_source(File::from_str(
            "flamingo.session.backend: redis\nflamingo.session.max.age: 10",
            FileFormat::Yaml,
        ))
        .add_source(File::from_str(
            "flamingo: {session: {max: {age: 20}}}",
            FileFormat::Yaml,
        ))
        .build()
        .unwrap();
    let session = SessionConfig::from_config(&config).unwrap();
    assert_eq!(session.backend, BackendKind::Redis);
    assert_eq!(session.max_age, Duration::from_secs(20));
}

#[test]
fn two_spellings_with_different_values_are_an_error() {
    let error = from_yaml("flamingo.session: {max.age: 10}\nflamingo.session.max.age: 20")
        .expect_err("ambiguous");
    assert_names(&error, "flamingo.session.max.age", "different values");
    assert!(error.message.contains(r#"["max.age"]"#), "{error}");

    let error = from_yaml("flamingo.session.saveMode: OnRead\nflamingo.session.savemode: OnWrite")
        .expect_err("ambiguous");
    assert!(
        error.key.eq_ignore_ascii_case("flamingo.session.savemode"),
        "{error}"
    );

    // Agreeing spellings are fine.
    let session = from_yaml("flamingo.session: {max.age: 10}\nflamingo.session.max.age: 10");
    assert_eq!(session.unwrap().max_age, Duration::from_secs(10));
}

#[test]
fn the_debug_output_hides_secrets() {
    let session = from_yaml(
        "flamingo.session.secret: s3cr3t-value\nflamingo.session.redis.password: hunter2\n\
         flamingo.session.redis.url: redis://u:urlpass@h/0",
    )
    .unwrap();
    let debug = format!("{session:?} {:?}", session.redis.resolve().unwrap());
    for secret in ["s3cr3t-value", "hunter2", "urlpass"] {
        assert!(!debug.contains(secret), "{debug}");
    }
}

#[test]
fn legacy_aliases_still_work_and_the_new_key_wins() {
    let session = from_yaml(
        "session.backend: file\nsession.max.age: 60\nflamingo.session.max.age: 90\n\
         core.healthcheck.checkSession: false",
    )
    .unwrap();
    assert_eq!(session.backend, BackendKind::File);
    assert_eq!(session.max_age, Duration::from_secs(90));
    assert!(!session.healthcheck);

    let error = from_yaml("session.backend: nope").expect_err("bad legacy value");
    assert_names(&error, "session.backend", "\"nope\"");
}

// ---------------------------------------------------------------------------------------------
// Values of every type

#[test]
fn durations_take_go_syntax_or_seconds() {
    let timeout = |value: &str| {
        from_yaml(&format!("flamingo.session.redis.timeout: {value}"))
            .unwrap()
            .redis
            .timeout
    };
    assert_eq!(timeout("5s"), Duration::from_secs(5));
    assert_eq!(timeout("500ms"), Duration::from_millis(500));
    assert_eq!(timeout("1m30s"), Duration::from_secs(90));
    assert_eq!(timeout("2h"), Duration::from_secs(7200));
    assert_eq!(timeout("1.5s"), Duration::from_millis(1500));
    assert_eq!(timeout("3"), Duration::from_secs(3));
    assert_eq!(timeout("0.25"), Duration::from_millis(250));
    assert_eq!(timeout("'7'"), Duration::from_secs(7));

    let max_age = |value: &str| {
        from_yaml(&format!("flamingo.session.max.age: {value}"))
            .unwrap()
            .max_age
    };
    assert_eq!(max_age("60"), Duration::from_secs(60));
    assert_eq!(max_age("86400.0"), Duration::from_secs(86400));
    assert_eq!(max_age("720h"), Duration::from_secs(720 * 3600));
}

#[test]
fn numbers_may_be_floats_with_whole_values() {
    let session = from_yaml(
        "flamingo.session.store.length: 1048576.0\nflamingo.session.redis.idle.connections: 2e1",
    )
    .unwrap();
    assert_eq!(session.store_length, 1_048_576);
    assert_eq!(session.redis.idle_connections, 20);
}

#[test]
fn scalars_are_accepted_where_strings_are_expected() {
    let session =
        from_yaml("flamingo.session.redis.password: 12345\nflamingo.session.redis.username: 42")
            .unwrap();
    assert_eq!(session.redis.password, "12345");
    assert_eq!(session.redis.username.as_deref(), Some("42"));
}

#[test]
fn an_empty_key_prefix_means_session() {
    let session = from_yaml("flamingo.session.redis.keyPrefix: '   '").unwrap();
    assert_eq!(session.redis.key_prefix, "session:");
}

#[test]
fn a_key_prefix_with_a_hash_tag_is_refused() {
    // The first characters of a session ID are its cluster hash tag; braces in the prefix
    // would take that over and split an owner's sessions from its index.
    let err = from_yaml("flamingo.session.redis.keyPrefix: 'app{1}:'").unwrap_err();
    assert_eq!(err.key, "flamingo.session.redis.keyPrefix");
    assert!(err.message.contains("{ or }"), "{}", err.message);
}

#[test]
fn a_host_list_may_be_a_yaml_list() {
    let session = from_yaml(
        "flamingo.session.redis: {clusterMode: true, host: [a:7000, 'b:7001']}\n\
         flamingo.session.backend: redis",
    )
    .unwrap();
    assert_eq!(session.redis.resolve().unwrap().hosts, ["a:7000", "b:7001"]);
}

#[test]
fn same_site_and_enumerations_ignore_case() {
    let session =
        from_yaml("flamingo.session: {cookie.sameSite: STRICT, saveMode: onwrite, backend: Redis}")
            .unwrap();
    assert_eq!(session.cookie.same_site, SameSiteSetting::Strict);
    assert_eq!(session.save_mode, SaveMode::OnWrite);
    assert_eq!(session.backend, BackendKind::Redis);
}

// ---------------------------------------------------------------------------------------------
// Environment variables

#[test]
fn environment_variables_override_and_arrive_as_strings() {
    let session = from_yaml_and_env(
        "flamingo.session: {max.age: 10, redis: {host: file-host}, cookie.secure: true}",
        &[
            ("FLAMINGO__SESSION__REDIS__HOST", "h"),
            ("FLAMINGO__SESSION__SAVEMODE", "OnWrite"),
            ("FLAMINGO__SESSION__MAX__AGE", "60"),
            ("FLAMINGO__SESSION__COOKIE__SECURE", "false"),
            ("FLAMINGO__SESSION__COOKIE__SAMESITE", "strict"),
            ("FLAMINGO__SESSION__STORE__LENGTH", "2048"),
            ("FLAMINGO__SESSION__HEALTHCHECK", "FALSE"),
            ("FLAMINGO__SESSION__MEMORY__CAPACITY", "77"),
            ("FLAMINGO__SESSION__FILECLEANUPINTERVAL", "10m"),
            ("FLAMINGO__SESSION__REDIS__IDLE__CONNECTIONS", "7"),
            ("FLAMINGO__SESSION__REDIS__DATABASE", "2"),
            ("FLAMINGO__SESSION__REDIS__TLS", "true"),
            ("FLAMINGO__SESSION__REDIS__TLSCAFILE", "/etc/ca.pem"),
            ("FLAMINGO__SESSION__REDIS__TIMEOUT", "250ms"),
            ("FLAMINGO__SESSION__REDIS__KEYPREFIX", "app:"),
        ],
    )
    .unwrap();
    assert_eq!(session.redis.host, "h");
    assert_eq!(session.save_mode, SaveMode::OnWrite);
    assert_eq!(session.max_age, Duration::from_secs(60));
    assert!(!session.cookie.secure);
    assert_eq!(session.cookie.same_site, SameSiteSetting::Strict);
    assert_eq!(session.store_length, 2048);
    assert!(!session.healthcheck);
    assert_eq!(session.memory_capacity, 77);
    assert_eq!(session.file_cleanup_interval, Duration::from_secs(600));
    assert_eq!(session.redis.idle_connections, 7);
    assert_eq!(session.redis.database, 2);
    assert!(session.redis.tls);
    assert_eq!(
        session.redis.tls_ca_file,
        Some(PathBuf::from("/etc/ca.pem"))
    );
    assert_eq!(session.redis.timeout, Duration::from_millis(250));
    assert_eq!(session.redis.key_prefix, "app:");
}

#[test]
fn environment_variables_override_the_same_spelling_too() {
    let session = from_yaml_and_env(
        "flamingo: {session: {max: {age: 10}, redis: {url: 'redis://file-host/1'}}}",
        &[
            ("FLAMINGO__SESSION__MAX__AGE", "60"),
            ("FLAMINGO__SESSION__REDIS__URL", ""),
        ],
    )
    .unwrap();
    assert_eq!(session.max_age, Duration::from_secs(60));
    assert_eq!(session.redis.url, None, "an empty URL is unset");
}

#[test]
fn only_flamingo_variables_are_read() {
    let session = from_yaml_and_env(
        "",
        &[
            ("SESSION__BACKEND", "redis"),
            ("FLAMINGO_SESSION_BACKEND", "redis"),
            ("FLAMINGO", "x"),
            ("PATH", "/usr/bin"),
        ],
    )
    .unwrap();
    assert_eq!(session, SessionConfig::default());
}

#[test]
fn a_plain_environment_with_a_double_underscore_separator_works_too() {
    let config = Config::builder()
        .add_source(Environment::default().separator("__").source(Some(vars(&[
            ("FLAMINGO__SESSION__BACKEND", "file"),
            ("FLAMINGO__SESSION__REDIS__CLUSTERMODE", "true"),
            ("HOME", "/root"),
        ]))))
        .build()
        .unwrap();
    let session = SessionConfig::from_config(&config).unwrap();
    assert_eq!(session.backend, BackendKind::File);
    assert!(session.redis.cluster_mode);
}

#[test]
fn bad_environment_values_name_flamingos_key() {
    let error = from_yaml_and_env("", &[("FLAMINGO__SESSION__BACKEND", "postgres")])
        .expect_err("unknown backend");
    assert_names(&error, "flamingo.session.backend", "\"postgres\"");

    let error = from_yaml_and_env("", &[("FLAMINGO__SESSION__REDIS__USERNAME", "")])
        .expect_err("empty username");
    assert_names(
        &error,
        "flamingo.session.redis.username",
        "must not be empty",
    );

    let error = from_yaml_and_env("", &[("FLAMINGO__SESSION__COOKIE__SECURE", "yes")])
        .expect_err("not a boolean");
    assert_names(&error, "flamingo.session.cookie.secure", "\"yes\"");

    let error = from_yaml_and_env("", &[("FLAMINGO__SESSION__BACKND", "redis")]).expect_err("typo");
    assert_names(&error, "flamingo.session.backnd", "unknown key");
}

// ---------------------------------------------------------------------------------------------
// One test per bad value

#[test]
fn an_unknown_backend_is_an_error() {
    rejects(
        "flamingo.session.backend: memroy",
        "flamingo.session.backend",
        "\"memroy\"",
    );
}

#[test]
fn a_bad_duration_is_an_error() {
    let error = rejects(
        "flamingo.session.redis.timeout: foo",
        "flamingo.session.redis.timeout",
        "\"foo\"",
    );
    assert!(error.message.contains("invalid duration"), "{error}");
    rejects(
        "flamingo.session.redis.timeout: 0s",
        "flamingo.session.redis.timeout",
        "\"0s\"",
    );
    rejects(
        "flamingo.session.fileCleanupInterval: 5 minutes",
        "flamingo.session.fileCleanupInterval",
        "\"5 minutes\"",
    );
}

#[test]
fn an_empty_username_is_an_error() {
    rejects(
        "flamingo.session.redis.username: ''",
        "flamingo.session.redis.username",
        "must not be empty",
    );
}

#[test]
fn an_unknown_same_site_is_an_error() {
    rejects(
        "flamingo.session.cookie.sameSite: sideways",
        "flamingo.session.cookie.sameSite",
        "\"sideways\"",
    );
}

#[test]
fn same_site_none_needs_a_secure_cookie() {
    rejects(
        "flamingo.session.cookie: {sameSite: none, secure: false}",
        "flamingo.session.cookie.sameSite",
        "cookie.secure",
    );
}

#[test]
fn a_negative_store_length_is_an_error() {
    rejects(
        "flamingo.session.store.length: -1",
        "flamingo.session.store.length",
        "-1",
    );
    rejects(
        "flamingo.session.store.length: 1.5",
        "flamingo.session.store.length",
        "1.5",
    );
    rejects(
        "flamingo.session.store.length: lots",
        "flamingo.session.store.length",
        "\"lots\"",
    );
}

#[test]
fn a_non_numeric_database_in_the_url_is_an_error() {
    let error = rejects(
        "flamingo.session.redis.url: redis://user:hunter2@host/abc",
        "flamingo.session.redis.url",
        "\"abc\"",
    );
    assert!(!error.to_string().contains("hunter2"), "{error}");
    let error = rejects(
        "flamingo.session.redis.url: redis://user:hunter2@host/?db=two",
        "flamingo.session.redis.url",
        "\"two\"",
    );
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[test]
fn a_bad_url_scheme_is_an_error() {
    let error = rejects(
        "flamingo.session.redis.url: http://user:hunter2@host/0",
        "flamingo.session.redis.url",
        "<redacted>",
    );
    assert!(error.message.contains("\"http\""), "{error}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
    let error = rejects(
        "flamingo.session.redis.url: 'not a url hunter2'",
        "flamingo.session.redis.url",
        "<redacted>",
    );
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[test]
fn an_unknown_save_mode_is_an_error() {
    let error = rejects(
        "flamingo.session.saveMode: Sometimes",
        "flamingo.session.saveMode",
        "\"Sometimes\"",
    );
    assert!(error.message.contains("Always, OnRead, OnWrite"), "{error}");
}

#[test]
fn an_unknown_key_is_an_error() {
    let error = rejects(
        "flamingo.session.backnd: redis",
        "flamingo.session.backnd",
        "unknown key",
    );
    assert!(
        error.message.contains("flamingo.session.backend"),
        "{error}"
    );
    rejects(
        "flamingo: {session: {redis: {hots: x}}}",
        "flamingo.session.redis.hots",
        "did you mean flamingo.session.redis.host",
    );
    rejects(
        "flamingo.session.redis.host.port: 1",
        "flamingo.session.redis.host",
        "expected a single value, got a map",
    );
    let error = rejects(
        "flamingo.session.foo: 1",
        "flamingo.session.foo",
        "unknown key",
    );
    assert!(!error.message.contains("did you mean"), "{error}");
    rejects(
        "flamingo.session.redis: cache",
        "flamingo.session.redis",
        "expected a map",
    );
    rejects(
        "flamingo.session: memory",
        "flamingo.session",
        "expected a map",
    );
}

#[test]
fn an_unknown_key_never_shows_its_value() {
    let error = rejects(
        "flamingo.session.redis.pasword: hunter2",
        "flamingo.session.redis.pasword",
        "did you mean flamingo.session.redis.password",
    );
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[test]
fn a_bad_name_is_an_error() {
    rejects(
        "flamingo.session.name: ''",
        "flamingo.session.name",
        "must not be empty",
    );
    rejects(
        "flamingo.session.name: 'my session'",
        "flamingo.session.name",
        "\"my session\"",
    );
}

#[test]
fn an_empty_secret_is_an_error_that_hides_the_value() {
    rejects(
        "flamingo.session.secret: ''",
        "flamingo.session.secret",
        "must not be empty",
    );
    let error = rejects(
        "flamingo.session.secret: {a: hunter2}",
        "flamingo.session.secret",
        "got a map",
    );
    assert!(!error.to_string().contains("hunter2"), "{error}");
    let error = rejects(
        "flamingo.session.redis.password: [hunter2]",
        "flamingo.session.redis.password",
        "<redacted>",
    );
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[test]
fn a_non_boolean_is_an_error() {
    rejects(
        "flamingo.session.healthcheck: maybe",
        "flamingo.session.healthcheck",
        "\"maybe\"",
    );
    rejects(
        "flamingo.session.redis.tls: 1",
        "flamingo.session.redis.tls",
        "1",
    );
    rejects(
        "flamingo.session.redis.clusterMode: yes",
        "flamingo.session.redis.clusterMode",
        "\"yes\"",
    );
}

#[test]
fn a_bad_max_age_is_an_error() {
    rejects(
        "flamingo.session.max.age: 0",
        "flamingo.session.max.age",
        "0",
    );
    rejects(
        "flamingo.session.max.age: -5",
        "flamingo.session.max.age",
        "-5",
    );
    rejects(
        "flamingo.session.max.age: forever",
        "flamingo.session.max.age",
        "\"forever\"",
    );
}

#[test]
fn a_zero_memory_capacity_is_an_error() {
    rejects(
        "flamingo.session.memory.capacity: 0",
        "flamingo.session.memory.capacity",
        "0",
    );
}

#[test]
fn a_zero_pool_is_an_error() {
    rejects(
        "flamingo.session.redis.idle.connections: 0",
        "flamingo.session.redis.idle.connections",
        "0",
    );
}

#[test]
fn a_bad_database_is_an_error() {
    rejects(
        "flamingo.session.redis.database: -1",
        "flamingo.session.redis.database",
        "-1",
    );
    rejects(
        "flamingo.session.redis.database: three",
        "flamingo.session.redis.database",
        "\"three\"",
    );
}

#[test]
fn a_bad_cookie_path_is_an_error() {
    rejects(
        "flamingo.session.cookie.path: app",
        "flamingo.session.cookie.path",
        "\"app\"",
    );
}

#[test]
fn a_bad_host_is_an_error() {
    rejects(
        "flamingo.session.redis.host: 'a b'",
        "flamingo.session.redis.host",
        "\"a b\"",
    );
    rejects(
        "flamingo.session.redis.host: h:99999",
        "flamingo.session.redis.host",
        "\"h:99999\"",
    );
}

#[test]
fn a_host_list_needs_cluster_mode() {
    rejects(
        "flamingo.session: {backend: redis, redis.host: 'a:7000,b:7001'}",
        "flamingo.session.redis.host",
        "clusterMode",
    );
}

#[test]
fn a_ca_file_needs_tls() {
    rejects(
        "flamingo.session: {backend: redis, redis.tlsCaFile: /etc/ca.pem}",
        "flamingo.session.redis.tlsCaFile",
        "\"/etc/ca.pem\"",
    );
    // A rediss:// URL turns TLS on, which is enough.
    from_yaml(
        "flamingo.session: {backend: redis, redis: {tlsCaFile: /etc/ca.pem, url: 'rediss://h'}}",
    )
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Redis: Flamingo's URL-versus-key precedence

const URL_HOST: &str = "url-host:6380";

struct Case {
    name: &'static str,
    url: Option<&'static str>,
    host: &'static str,
    username: Option<&'static str>,
    password: &'static str,
    database: i64,
    expected: Result<(&'static str, Option<&'static str>, &'static str, i64), &'static str>,
}

#[test]
fn url_versus_key_precedence() {
    let cases = [
        Case {
            name: "url only",
            url: Some("redis://url-user:url-pw@url-host:6380/0"),
            host: "redis",
            username: None,
            password: "",
            database: 0,
            expected: Ok((URL_HOST, Some("url-user"), "url-pw", 0)),
        },
        Case {
            name: "host only",
            url: None,
            host: "key-host:7000",
            username: None,
            password: "",
            database: 0,
            expected: Ok(("key-host:7000", None, "", 0)),
        },
        Case {
            name: "url host beats host key",
            url: Some("redis://url-host:6380"),
            host: "key-host:7000",
            username: None,
            password: "",
            database: 0,
            expected: Ok((URL_HOST, None, "", 0)),
        },
        Case {
            name: "url user beats username key",
            url: Some("redis://url-user:url-pw@url-host:6380"),
            host: "key-host",
            username: Some("key-user"),
            password: "key-pw",
            database: 0,
            expected: Ok((URL_HOST, Some("url-user"), "url-pw", 0)),
        },
        Case {
            name: "empty url user keeps username key",
            url: Some("redis://:url-pw@url-host:6380"),
            host: "key-host",
            username: Some("key-user"),
            password: "key-pw",
            database: 0,
            expected: Ok((URL_HOST, Some("key-user"), "url-pw", 0)),
        },
        Case {
            name: "url password beats key even if empty",
            url: Some("redis://user:@url-host:6380"),
            host: "key-host",
            username: None,
            password: "key-pw",
            database: 0,
            expected: Ok((URL_HOST, Some("user"), "", 0)),
        },
        Case {
            name: "url without password keeps password key",
            url: Some("redis://url-user@url-host:6380"),
            host: "key-host",
            username: None,
            password: "key-pw",
            database: 0,
            expected: Ok((URL_HOST, Some("url-user"), "key-pw", 0)),
        },
        Case {
            name: "db from path",
            url: Some("redis://url-host:6380/3"),
            host: "key-host",
            username: None,
            password: "",
            database: 7,
            expected: Ok((URL_HOST, None, "", 3)),
        },
        Case {
            name: "db from ?db=",
            url: Some("redis://url-host:6380?db=4"),
            host: "key-host",
            username: None,
            password: "",
            database: 7,
            expected: Ok((URL_HOST, None, "", 4)),
        },
        Case {
            name: "path beats ?db=",
            url: Some("redis://url-host:6380/3?db=4"),
            host: "key-host",
            username: None,
            password: "",
            database: 7,
            expected: Ok((URL_HOST, None, "", 3)),
        },
        Case {
            name: "neither gives the database key",
            url: Some("redis://url-host:6380/"),
            host: "key-host",
            username: None,
            password: "",
            database: 7,
            expected: Ok((URL_HOST, None, "", 7)),
        },
        Case {
            name: "broken db in path",
            url: Some("redis://url-host:6380/zero"),
            host: "key-host",
            username: None,
            password: "",
            database: 0,
            expected: Err("\"zero\""),
        },
        Case {
            name: "broken ?db=",
            url: Some("redis://url-host:6380?db=zero"),
            host: "key-host",
            username: None,
            password: "",
            database: 0,
            expected: Err("\"zero\""),
        },
    ];
    assert_eq!(cases.len(), 13);
    for case in cases {
        let redis = RedisConfig {
            url: case.url.map(str::to_owned),
            host: case.host.to_owned(),
            username: case.username.map(str::to_owned),
            password: case.password.to_owned(),
            database: case.database,
            ..RedisConfig::default()
        };
        match (redis.resolve(), case.expected) {
            (Ok(connection), Ok((host, username, password, database))) => {
                assert_eq!(connection.hosts, [host], "{}", case.name);
                assert_eq!(connection.username.as_deref(), username, "{}", case.name);
                assert_eq!(connection.password, password, "{}", case.name);
                assert_eq!(connection.database, database, "{}", case.name);
                assert!(!connection.tls, "{}", case.name);
            }
            (Err(error), Err(shown)) => {
                assert_names(&error, "flamingo.session.redis.url", shown);
            }
            (got, expected) => panic!("{}: got {got:?}, expected {expected:?}", case.name),
        }
    }
}

#[test]
fn rediss_turns_tls_on_and_redis_tls_works_with_plain_urls() {
    let resolve = |url: &str, tls: bool| {
        RedisConfig {
            url: Some(url.to_owned()),
            tls,
            ..RedisConfig::default()
        }
        .resolve()
        .unwrap()
        .tls
    };
    assert!(resolve("rediss://h", false));
    assert!(resolve("redis://h", true));
    assert!(!resolve("redis://h", false));
}

#[test]
fn a_url_without_a_host_keeps_the_host_key() {
    let connection = RedisConfig {
        url: Some("redis:///2".to_owned()),
        host: "key-host".to_owned(),
        ..RedisConfig::default()
    }
    .resolve()
    .unwrap();
    assert_eq!(connection.hosts, ["key-host:6379"]);
    assert_eq!(connection.database, 2);
}

#[test]
fn cluster_mode_uses_database_zero_and_every_seed() {
    let connection = RedisConfig {
        host: "10.0.0.1:7000,10.0.0.2:7001,[::1]:7002".to_owned(),
        cluster_mode: true,
        database: 5,
        ..RedisConfig::default()
    }
    .resolve()
    .unwrap();
    assert_eq!(
        connection.hosts,
        ["10.0.0.1:7000", "10.0.0.2:7001", "[::1]:7002"]
    );
    assert_eq!(connection.database, 0);

    let connection = RedisConfig {
        url: Some("redis://seed:7000/3".to_owned()),
        cluster_mode: true,
        ..RedisConfig::default()
    }
    .resolve()
    .unwrap();
    assert_eq!(connection.hosts, ["seed:7000"]);
    assert_eq!(connection.database, 0);
}

#[test]
fn resolve_rejects_an_empty_username_set_in_code() {
    let error = RedisConfig {
        username: Some(String::new()),
        ..RedisConfig::default()
    }
    .resolve()
    .expect_err("empty username");
    assert_names(
        &error,
        "flamingo.session.redis.username",
        "must not be empty",
    );
}

#[test]
fn the_example_configs_load() {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/config");
    let mut loaded = 0;
    for entry in std::fs::read_dir(&folder).expect("examples/config exists") {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|e| e == "yml" || e == "yaml" || e == "toml")
        {
            let config = Config::builder()
                .add_source(File::from(path.clone()))
                .build()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            SessionConfig::from_config(&config)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            loaded += 1;
        }
    }
    assert!(loaded > 0, "no config files in {}", folder.display());
}

#[test]
fn file_sync_can_be_switched_off_and_a_bad_value_names_the_key() {
    let session = from_yaml("flamingo.session.fileSync: false\n").unwrap();
    assert!(!session.file_sync);
    let err = rejects(
        "flamingo.session.fileSync: sometimes\n",
        "flamingo.session.fileSync",
        "sometimes",
    );
    assert!(err.to_string().contains("fileSync"));
}

#[test]
fn cookie_domain_persistent_and_max_lifetime_are_read() {
    let config = from_yaml(
        "flamingo.session: {cookie: {domain: example.com, persistent: false}, max.lifetime: 8h}",
    )
    .unwrap();
    assert_eq!(config.cookie.domain.as_deref(), Some("example.com"));
    assert!(!config.cookie.persistent);
    assert_eq!(config.max_lifetime, Duration::from_secs(8 * 3600));
    let defaults = SessionConfig::default();
    assert_eq!(defaults.cookie.domain, None);
    assert!(defaults.cookie.persistent);
    assert_eq!(defaults.max_lifetime, Duration::ZERO);
}

#[test]
fn out_of_range_lifetimes_and_bad_domains_are_refused_naming_the_key() {
    for (yaml, key) in [
        (
            "flamingo.session.max.age: 9223372036854775807",
            "flamingo.session.max.age",
        ),
        (
            "flamingo.session.max.age: 9223372036854775",
            "flamingo.session.max.age",
        ),
        ("flamingo.session.max.age: 401d", "flamingo.session.max.age"),
        (
            "flamingo.session.max.age: 9601h",
            "flamingo.session.max.age",
        ),
        (
            "flamingo.session.max.lifetime: 876001h",
            "flamingo.session.max.lifetime",
        ),
        (
            "flamingo.session.max.lifetime: soon",
            "flamingo.session.max.lifetime",
        ),
        (
            "flamingo.session.cookie.domain: 'evil.example; path=/'",
            "flamingo.session.cookie.domain",
        ),
        (
            "flamingo.session.cookie.persistent: maybe",
            "flamingo.session.cookie.persistent",
        ),
    ] {
        let err = from_yaml(yaml).expect_err(yaml);
        assert_eq!(err.key, key, "{yaml}: {err}");
    }
    // The largest values that are allowed.
    assert_eq!(
        from_yaml("flamingo.session.max.age: 9600h")
            .unwrap()
            .max_age,
        Duration::from_secs(400 * 24 * 3600)
    );
}
