//! A broker type of your own: API keys in an `X-Api-Key` header, configured like the built-in
//! brokers under `core.auth.web.broker` with `typ: apikey`.
//!
//! ```sh
//! cargo run --example custom_broker
//! curl -H 'X-Api-Key: demo-key' http://127.0.0.1:8080/api/whoami   # {"sub":"reporting",...}
//! curl -i http://127.0.0.1:8080/api/whoami                         # 401
//! ```
//!
//! The config keeps the SHA-256 of each key, not the key: a leaked config file opens nothing,
//! and looking a key up by its digest tells an attacker nothing about the keys that exist.

use std::collections::BTreeMap;

use actix_web::{get, App, HttpResponse, HttpServer};
use flamingo_auth::{
    async_trait, config::CustomBrokerConfig, Auth, AuthConfigError, AuthError, Authenticated,
    BrokerRequest, Identity, IdentityKind, RequestIdentifier,
};
use flamingo_session::Sessions;
use sha2::{Digest as _, Sha256};

/// `demo-key` is the key whose SHA-256 is configured here (`printf demo-key | sha256sum`).
const CONFIG: &str = "
flamingo.session.cookie.secure: false   # local http only
core.auth.web.broker:
  - broker: keys
    typ: apikey
    header: X-Api-Key
    keys:
      # SHA-256 of the key: the subject it stands for
      c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c: reporting
";

/// The `apikey` broker: who the request's API key belongs to.
struct ApiKeyBroker {
    name: String,
    header: String,
    /// SHA-256 of the key (hex) → subject.
    keys: BTreeMap<String, String>,
}

impl ApiKeyBroker {
    /// Builds the broker from its config entry; unknown keys are start-up errors.
    fn from_config(entry: &CustomBrokerConfig) -> Result<Self, AuthConfigError> {
        entry.check_keys(&["header", "keys"])?;
        let header = entry
            .string("header")?
            .unwrap_or_else(|| "X-Api-Key".to_owned());
        let Some(serde_json::Value::Object(map)) = entry.get("keys") else {
            return Err(entry.invalid("keys", "must be a map of SHA-256 (hex) to subject"));
        };
        let mut keys = BTreeMap::new();
        for (digest, subject) in map {
            let Some(subject) = subject.as_str() else {
                return Err(entry.invalid("keys", format!("{digest}: the subject must be text")));
            };
            keys.insert(digest.to_ascii_lowercase(), subject.to_owned());
        }
        Ok(ApiKeyBroker {
            name: entry.broker().to_owned(),
            header,
            keys,
        })
    }
}

#[async_trait(?Send)]
impl RequestIdentifier for ApiKeyBroker {
    fn broker(&self) -> &str {
        &self.name
    }

    async fn identify(&self, request: &BrokerRequest<'_>) -> Result<Option<Identity>, AuthError> {
        let Some(key) = request.request.headers().get(self.header.as_str()) else {
            return Ok(None);
        };
        let digest = hex::encode(Sha256::digest(key.as_bytes()));
        Ok(self.keys.get(&digest).map(|subject| {
            Identity::new(
                &self.name,
                subject,
                IdentityKind::Custom,
                Default::default(),
            )
        }))
    }
}

#[get("/api/whoami")]
async fn whoami(login: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "sub": login.user.sub,
        "broker": login.identity.broker(),
    }))
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = config::Config::builder()
        .add_source(config::File::from_str(CONFIG, config::FileFormat::Yaml))
        .build()?;
    let sessions = Sessions::from_config(&config).await?;
    let auth = Auth::builder(&config, &sessions)?
        .broker_type("apikey", ApiKeyBroker::from_config)
        .build()
        .await?;
    println!("listening on http://127.0.0.1:8080; try: curl -H 'X-Api-Key: demo-key' http://127.0.0.1:8080/api/whoami");
    HttpServer::new(move || {
        App::new()
            .wrap(sessions.middleware())
            .configure(|cfg| auth.configure(cfg))
            .service(whoami)
    })
    .bind(("127.0.0.1", 8080))?
    .run()
    .await?;
    Ok(())
}
