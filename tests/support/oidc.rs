//! Starts the oidc-provider test OpenID Provider (`tests/oidc/provider.mjs`) and drives its
//! login, consent and logout pages over HTTP with a cookie jar, like a browser would.
//!
//! The provider runs under Node.js on a free loopback port. Its accounts are `alice` (groups
//! `admins`, `staff`) and `bob` (`staff`); any password is accepted by its development login
//! form. Each start generates a new signing key: [`OidcProvider::restart`] is a key rotation.

use std::{
    io::{BufRead as _, BufReader},
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::Duration,
};

use serde_json::{json, Value};

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// The settings of a provider start.
#[derive(Debug, Clone)]
pub struct ProviderOptions {
    /// oidc-provider client metadata (see [`client`]).
    pub clients: Vec<Value>,
    /// Access-token lifetime in seconds. Default: 3600.
    pub access_token_ttl: u64,
    /// ID-token lifetime in seconds. Default: 3600.
    pub id_token_ttl: u64,
    /// Refresh-token rotation (`rotateRefreshToken`): a new refresh token on every refresh, and
    /// a reused one revokes the grant. Default: off.
    pub rotate_refresh_token: bool,
    /// How long the provider holds its answer to a refresh-token grant, after making (and
    /// counting) the grant: a slow token endpoint. Default: none.
    pub refresh_delay: Duration,
    /// The signing key (an RSA private key as PEM, e.g. [`rsa_pem`]) and its `kid`, so that a
    /// test can sign tokens the provider's JWKS verifies. Default: none, a fresh key each start
    /// (then [`OidcProvider::restart`] rotates the key; with a key given it keeps it).
    pub signing_key: Option<(String, String)>,
    /// APIs that get JWT access tokens (`aud` = the resource indicator) through the client
    /// credentials grant with `resource=`, as (indicator, access-token lifetime in seconds).
    /// Default: none.
    pub resource_servers: Vec<(String, u64)>,
    /// `POST /test/sign`: signs any claims with the provider's key (see
    /// [`OidcProvider::sign`]). Default: off.
    pub test_signer: bool,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        ProviderOptions {
            clients: Vec::new(),
            access_token_ttl: 3600,
            id_token_ttl: 3600,
            rotate_refresh_token: false,
            refresh_delay: Duration::ZERO,
            signing_key: None,
            resource_servers: Vec::new(),
            test_signer: false,
        }
    }
}

/// Client metadata for an app at `app_base` (e.g. `http://127.0.0.1:8080`) logging in through
/// the broker `broker`: confidential (`client_secret_basic`), code flow with refresh tokens,
/// callback `/core/auth/callback/<broker>`, post-logout `/core/auth/logoutCallback`.
pub fn client(client_id: &str, secret: &str, app_base: &str, broker: &str) -> Value {
    json!({
        "client_id": client_id,
        "client_secret": secret,
        "redirect_uris": [format!("{app_base}/core/auth/callback/{broker}")],
        "post_logout_redirect_uris": [format!("{app_base}/core/auth/logoutCallback")],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    })
}

/// A running oidc-provider; stopped on drop.
pub struct OidcProvider {
    child: Option<Child>,
    port: u16,
    options: ProviderOptions,
    log: Arc<Mutex<Vec<String>>>,
}

impl OidcProvider {
    /// Starts the provider on a free port and waits until it listens.
    ///
    /// Panics when Node.js or the npm packages are missing, saying what to run.
    pub fn start(options: ProviderOptions) -> OidcProvider {
        let mut provider = OidcProvider {
            child: None,
            port: free_port(),
            options,
            log: Arc::default(),
        };
        provider.spawn();
        provider
    }

    /// Stops the provider and starts it again on the same port, with a new signing key (and
    /// without its in-memory sessions and grants).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The issuer, `http://127.0.0.1:<port>`.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The protected test API: 200 `{"sub",...}` for a valid bearer access token, else 401.
    pub fn whoami_url(&self) -> String {
        format!("{}/api/whoami", self.issuer())
    }

    /// The refresh-token grants the provider answered so far: (succeeded, failed).
    pub async fn refresh_grants(&self) -> (u64, u64) {
        let counts: Value = reqwest::get(format!("{}/test/refreshes", self.issuer()))
            .await
            .expect("GET /test/refreshes")
            .json()
            .await
            .expect("refresh counts are JSON");
        (
            counts["success"].as_u64().expect("success count"),
            counts["error"].as_u64().expect("error count"),
        )
    }

    /// Waits until the provider has answered (or, with a
    /// [`refresh_delay`](ProviderOptions::refresh_delay), made) `success` refresh grants;
    /// panics after `within`.
    pub async fn wait_for_refresh_grants(&self, success: u64, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        loop {
            let (done, _) = self.refresh_grants().await;
            if done >= success {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the provider saw {done} of {success} refresh grants within {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The back-channel logout posts the provider made so far: (answered 200/204, failed).
    pub async fn backchannel_posts(&self) -> (u64, u64) {
        let counts: Value = reqwest::get(format!("{}/test/backchannel", self.issuer()))
            .await
            .expect("GET /test/backchannel")
            .json()
            .await
            .expect("back-channel counts are JSON");
        (
            counts["success"].as_u64().expect("success count"),
            counts["error"].as_u64().expect("error count"),
        )
    }

    /// An access token of the client credentials grant for `client_id`: a JWT for the
    /// resource server `resource` (see [`ProviderOptions::resource_servers`]), or an opaque
    /// token without one.
    pub async fn client_credentials_token(
        &self,
        client_id: &str,
        secret: &str,
        resource: Option<&str>,
    ) -> String {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(resource) = resource {
            form.push(("resource", resource));
            form.push(("scope", "api"));
        }
        let response = reqwest::Client::new()
            .post(format!("{}/token", self.issuer()))
            .basic_auth(client_id, Some(secret))
            .form(&form)
            .send()
            .await
            .expect("POST /token");
        let status = response.status();
        let body: Value = response.json().await.expect("token response is JSON");
        assert!(status.is_success(), "token request failed: {status} {body}");
        body["access_token"]
            .as_str()
            .expect("an access_token")
            .to_owned()
    }

    /// Revokes `token` (RFC 7009) as the client `client_id`.
    pub async fn revoke(&self, client_id: &str, secret: &str, token: &str) {
        let response = reqwest::Client::new()
            .post(format!("{}/token/revocation", self.issuer()))
            .basic_auth(client_id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .expect("POST /token/revocation");
        assert!(
            response.status().is_success(),
            "revocation: {}",
            response.status()
        );
    }

    /// A JWT with `claims`, signed with the provider's current key (needs
    /// [`ProviderOptions::test_signer`]).
    pub async fn sign(&self, claims: &Value) -> String {
        let response = reqwest::Client::new()
            .post(format!("{}/test/sign", self.issuer()))
            .body(claims.to_string())
            .send()
            .await
            .expect("POST /test/sign");
        assert!(
            response.status().is_success(),
            "sign: {}",
            response.status()
        );
        response.text().await.expect("a JWT")
    }

    /// What the provider printed so far (for assertion messages).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn spawn(&mut self) {
        let dir = oidc_dir();
        if !dir.join("node_modules/oidc-provider/package.json").exists() {
            panic!(
                "the test OpenID Provider is not installed: run ./scripts/test.sh or \
                 `npm ci --prefix tests/oidc` (needs Node.js >= 20.12 and npm)"
            );
        }
        let mut command = Command::new("node");
        if let Some((pem, kid)) = &self.options.signing_key {
            command
                .env("OP_SIGNING_KEY_PEM", pem)
                .env("OP_SIGNING_KID", kid);
        }
        let mut child = match command
            .arg(dir.join("provider.mjs"))
            .current_dir(&dir)
            .env("OP_PORT", self.port.to_string())
            .env(
                "OP_CLIENTS",
                Value::Array(self.options.clients.clone()).to_string(),
            )
            .env(
                "OP_ACCESS_TOKEN_TTL",
                self.options.access_token_ttl.to_string(),
            )
            .env("OP_ID_TOKEN_TTL", self.options.id_token_ttl.to_string())
            .env(
                "OP_ROTATE_REFRESH_TOKEN",
                if self.options.rotate_refresh_token {
                    "1"
                } else {
                    "0"
                },
            )
            .env(
                "OP_REFRESH_DELAY_MS",
                self.options.refresh_delay.as_millis().to_string(),
            )
            .env(
                "OP_RESOURCE_SERVERS",
                Value::Object(
                    self.options
                        .resource_servers
                        .iter()
                        .map(|(indicator, ttl)| (indicator.clone(), json!({"accessTokenTTL": ttl})))
                        .collect(),
                )
                .to_string(),
            )
            .env(
                "OP_TEST_SIGNER",
                if self.options.test_signer { "1" } else { "0" },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(err) => panic!(
                "cannot run `node` ({err}): install Node.js >= 20.12 and npm \
                 (e.g. `apt-get install nodejs npm`), then `npm ci --prefix tests/oidc`"
            ),
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("oidc-provider listening on") {
                    let _ = ready_tx.send(());
                }
                log.lock().unwrap().push(line);
            }
        });
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line);
            }
        });
        self.child = Some(child);
        if ready_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let status = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            self.stop();
            panic!(
                "oidc-provider did not start (exit: {status:?}); its output:\n{}",
                self.log()
            );
        }
    }

    /// Stops the provider (a provider that is down); [`restart`](Self::restart) starts it again.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A browser: a reqwest client with a cookie jar that does not follow redirects by itself.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client")
}

/// Resolves a `Location` header against the URL that answered.
pub fn location(response: &reqwest::Response) -> Option<String> {
    let value = response
        .headers()
        .get(reqwest::header::LOCATION)?
        .to_str()
        .ok()?;
    Some(response.url().join(value).ok()?.to_string())
}

/// The `action` of the first form in `html`, resolved against `base`.
pub fn form_action(html: &str, base: &reqwest::Url) -> String {
    let start = html
        .find("action=\"")
        .map(|i| i + "action=\"".len())
        .expect("a form with an action");
    let end = html[start..].find('"').expect("closing quote") + start;
    let action = html[start..end]
        .replace("&amp;", "&")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/");
    base.join(&action)
        .expect("form action is a URL")
        .to_string()
}

/// The value of the hidden input `name` in `html`.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// Follows redirects from `url`, logging in as `user` and consenting at the provider's forms,
/// until a redirect leaves the provider (`issuer`); returns that URL (the app's callback).
pub async fn login_at_provider(
    browser: &reqwest::Client,
    issuer: &str,
    url: &str,
    user: &str,
) -> String {
    let mut response = browser.get(url).send().await.expect("GET at the provider");
    for _ in 0..20 {
        if response.status().is_redirection() {
            let next = location(&response).expect("redirect with Location");
            if !next.starts_with(issuer) {
                return next;
            }
            response = browser
                .get(&next)
                .send()
                .await
                .expect("GET at the provider");
            continue;
        }
        let status = response.status();
        let page_url = response.url().clone();
        let html = response.text().await.expect("page body");
        assert!(
            status.is_success(),
            "provider answered {status} at {page_url}: {html}"
        );
        let action = form_action(&html, &page_url);
        let form: Vec<(&str, &str)> = if html.contains("name=\"login\"") {
            vec![("prompt", "login"), ("login", user), ("password", "any")]
        } else if html.contains("name=\"prompt\" value=\"consent\"") {
            vec![("prompt", "consent")]
        } else {
            panic!("unexpected provider page at {page_url}: {html}");
        };
        response = browser
            .post(&action)
            .form(&form)
            .send()
            .await
            .expect("POST at the provider");
    }
    panic!("too many redirects at the provider");
}

/// Confirms the provider's logout page reached at `url` (the end-session request); returns
/// where the provider sends the browser afterwards (the `post_logout_redirect_uri`).
pub async fn confirm_logout_at_provider(browser: &reqwest::Client, url: &str) -> String {
    let response = browser.get(url).send().await.expect("GET end session");
    let page_url = response.url().clone();
    let status = response.status();
    let html = response.text().await.expect("logout page");
    assert!(status.is_success(), "end session answered {status}: {html}");
    let action = form_action(&html, &page_url);
    let xsrf = hidden_value(&html, "xsrf").expect("xsrf in the logout form");
    let mut response = browser
        .post(&action)
        .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
        .send()
        .await
        .expect("POST logout confirm");
    // The provider may pass through its own pages before leaving.
    for _ in 0..5 {
        let next = location(&response).expect("redirect after logout");
        if !next.starts_with(&format!("{}://{}", page_url.scheme(), page_url.authority())) {
            return next;
        }
        response = browser
            .get(&next)
            .send()
            .await
            .expect("GET at the provider");
    }
    panic!("the provider did not redirect back after logout");
}

/// An app under test: the session middleware, flamingo-auth and the test's routes, served by
/// actix-web on a loopback port. Stopped on drop.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    handle: actix_web::dev::ServerHandle,
}

impl TestApp {
    /// Builds sessions and auth from the YAML `config` (with `customize` applied to the auth
    /// builder) and serves them with `routes` on `port`.
    ///
    /// # Errors
    ///
    /// The start-up error of sessions or auth, as text.
    pub async fn try_start(
        port: u16,
        config: &str,
        customize: impl FnOnce(flamingo_auth::AuthBuilder) -> flamingo_auth::AuthBuilder,
        routes: fn(&mut actix_web::web::ServiceConfig),
    ) -> Result<TestApp, String> {
        let config = config::Config::builder()
            .add_source(config::File::from_str(config, config::FileFormat::Yaml))
            .build()
            .map_err(|err| err.to_string())?;
        let sessions = flamingo_session::Sessions::from_config(&config)
            .await
            .map_err(|err| err.to_string())?;
        let auth = customize(
            flamingo_auth::Auth::builder(&config, &sessions).map_err(|err| err.to_string())?,
        )
        .build()
        .await
        .map_err(|err| err.to_string())?;
        let server = actix_web::HttpServer::new(move || {
            let auth = auth.clone();
            actix_web::App::new()
                .wrap(sessions.middleware())
                .configure(|cfg| auth.configure(cfg))
                .configure(routes)
        })
        .workers(1)
        .bind(("127.0.0.1", port))
        .map_err(|err| err.to_string())?
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Ok(TestApp {
            base: format!("http://127.0.0.1:{port}"),
            handle,
        })
    }

    /// As [`try_start`](Self::try_start), panicking on a start-up error.
    pub async fn start(
        port: u16,
        config: &str,
        customize: impl FnOnce(flamingo_auth::AuthBuilder) -> flamingo_auth::AuthBuilder,
        routes: fn(&mut actix_web::web::ServiceConfig),
    ) -> TestApp {
        match Self::try_start(port, config, customize, routes).await {
            Ok(app) => app,
            Err(err) => panic!("the test app did not start: {err}"),
        }
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// YAML for the session settings every auth test uses: memory backend, cookies over http.
pub const SESSION_YAML: &str = "flamingo.session.cookie.secure: false\n";

/// A fresh 2048-bit RSA private key as PKCS#1 PEM, made by Node.js (which the provider needs
/// anyway), for signing forged tokens.
pub fn rsa_pem() -> String {
    let output = Command::new("node")
        .arg("-e")
        .arg(
            "const { generateKeyPairSync } = require('node:crypto');\
             process.stdout.write(generateKeyPairSync('rsa', { modulusLength: 2048 })\
             .privateKey.export({ type: 'pkcs1', format: 'pem' }));",
        )
        .output()
        .unwrap_or_else(|err| panic!("cannot run `node` ({err}): install Node.js >= 20.12"));
    assert!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("PEM is text")
}
