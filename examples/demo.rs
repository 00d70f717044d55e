//! The demo app: sessions on any backend, chosen by config alone.
//!
//! ```text
//! cargo run --example demo                                    # memory backend, 127.0.0.1:8080
//! cargo run --example demo -- --config examples/config/file.yml --addr 127.0.0.1:9000
//! ```
//!
//! `--config FILE` may be repeated; later files win, key by key, over the demo's defaults
//! (which turn `cookie.secure` off so the demo works on plain http://127.0.0.1). Environment
//! variables override both: `FLAMINGO__SESSION__BACKEND=file`. When no file configures a
//! broker, the demo turns on the fake broker of `examples/config/fake-auth.yml` (users
//! alice / alicepw and bob / bobpw). The demo sets no session secret of its own: a secret
//! written in public source is no secret, so it runs on the library default, which is logged
//! as insecure at start; set `flamingo.session.secret` in a file or
//! `FLAMINGO__SESSION__SECRET` before deploying it anywhere.
//!
//! HTTP contract (used by the end-to-end tests and the benchmarks; keep it stable):
//! - `GET /` an HTML page with the session's contents (sensitive values, such as auth's tokens,
//!   redacted) and forms, sent with `Cache-Control: no-store`;
//! - `GET /counter` increments a counter: `{"count": N}`;
//! - `POST /cart/items` `{"sku": "...", "qty": N}` adds to the cart; `GET /cart`; `DELETE /cart`;
//! - `POST /flash` `{"message": "..."}`; `GET /flash` answers and pops the list;
//! - `PUT /kv/{key}` stores a JSON value; `GET /kv` answers every key with its value;
//! - `GET /me`: `{"loggedIn": bool, "broker": ..., "user": {"sub","name","email","groups"}}`;
//! - `GET /me/sessions`: the logged-in user's live sessions at their broker, on every instance
//!   sharing the store: `{"sessions": [{"idHash", "current", "created", "lastSeen"}]}` (a
//!   guest: `{"sessions": []}`); `DELETE /me/sessions` ends all of them, this one included
//!   ("log out everywhere"): `{"ended": N}`. Both with `Cache-Control: no-store`;
//! - `GET /api/whoami`: calls the protected API `demo.protectedApi` with the logged-in user's
//!   access token through `AuthManager::http_client()` (401 without a login);
//! - Flamingo's auth routes under `/core/auth/` (login, callback, logout) for the brokers in
//!   `core.auth.web.broker` (`examples/config/fake-auth.yml`, `examples/config/oidc.yml`);
//! - `GET /status/healthcheck`.

use std::{collections::BTreeMap, net::SocketAddr};

use actix_web::{
    error::{ErrorBadRequest, JsonPayloadError},
    http::header,
    web, App, HttpRequest, HttpResponse, HttpServer,
};
use flamingo::{
    auth::{Auth, AuthError, AuthManager, Authenticated, User},
    session::{registry::Registry, Session, SessionError, SessionValue, Sessions},
};
use serde::{Deserialize, Serialize};

/// One line of the cart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct CartItem {
    sku: String,
    qty: u32,
}

/// The shopping cart, stored in the session as a derived type.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, SessionValue)]
#[session_value(name = "demo.Cart")]
struct Cart {
    items: Vec<CartItem>,
}

#[derive(Debug, Deserialize)]
struct AddItem {
    sku: String,
    qty: i64,
}

#[derive(Debug, Deserialize)]
struct FlashMessage {
    message: String,
}

const CART: &str = "cart";
const COUNT: &str = "count";
const KV_PREFIX: &str = "kv.";

async fn counter(session: Session) -> Result<HttpResponse, SessionError> {
    let count = session.load::<u64>(COUNT)?.unwrap_or(0) + 1;
    session.store(COUNT, count)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "count": count })))
}

async fn add_item(session: Session, item: web::Json<AddItem>) -> actix_web::Result<HttpResponse> {
    let AddItem { sku, qty } = item.into_inner();
    let sku = sku.trim().to_owned();
    if sku.is_empty() || sku.len() > 64 {
        return Err(ErrorBadRequest("sku must be 1 to 64 characters"));
    }
    let qty = u32::try_from(qty)
        .ok()
        .filter(|q| (1..=1000).contains(q))
        .ok_or_else(|| ErrorBadRequest("qty must be a whole number from 1 to 1000"))?;
    let mut cart = session.load::<Cart>(CART)?.unwrap_or_default();
    let lines = cart.items.len();
    match cart.items.iter_mut().find(|i| i.sku == sku) {
        Some(line) => line.qty = line.qty.saturating_add(qty).min(1000),
        None if lines >= 100 => return Err(ErrorBadRequest("the cart holds at most 100 lines")),
        None => cart.items.push(CartItem { sku, qty }),
    }
    session.store(CART, cart.clone())?;
    Ok(HttpResponse::Ok().json(cart))
}

async fn get_cart(session: Session) -> Result<HttpResponse, SessionError> {
    Ok(HttpResponse::Ok().json(session.load::<Cart>(CART)?.unwrap_or_default()))
}

async fn clear_cart(session: Session) -> HttpResponse {
    session.delete(CART);
    HttpResponse::Ok().json(Cart::default())
}

async fn add_flash(
    session: Session,
    body: web::Json<FlashMessage>,
) -> actix_web::Result<HttpResponse> {
    let message = body.into_inner().message;
    if message.is_empty() || message.len() > 500 {
        return Err(ErrorBadRequest("message must be 1 to 500 characters"));
    }
    session.add_flash(message)?;
    Ok(HttpResponse::NoContent().finish())
}

async fn take_flashes(session: Session) -> Result<HttpResponse, SessionError> {
    Ok(HttpResponse::Ok().json(session.flashes::<String>()?))
}

async fn put_kv(
    session: Session,
    key: web::Path<String>,
    value: web::Json<serde_json::Value>,
) -> actix_web::Result<HttpResponse> {
    let key = key.into_inner();
    if key.is_empty() || key.len() > 128 {
        return Err(ErrorBadRequest("key must be 1 to 128 characters"));
    }
    session.store(&format!("{KV_PREFIX}{key}"), value.into_inner())?;
    Ok(HttpResponse::NoContent().finish())
}

async fn get_kv(session: Session) -> Result<HttpResponse, SessionError> {
    let mut all = BTreeMap::new();
    for key in session.keys() {
        if let Some(name) = key.strip_prefix(KV_PREFIX) {
            if let Some(value) = session.load::<serde_json::Value>(&key)? {
                all.insert(name.to_owned(), value);
            }
        }
    }
    Ok(HttpResponse::Ok().json(all))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn me(user: User) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "loggedIn": user.is_logged_in(),
        "broker": user.broker,
        "user": { "sub": user.sub, "name": user.name, "email": user.email, "groups": user.groups },
    }))
}

/// `GET /me/sessions`: the user's sessions, or none for a guest.
async fn my_sessions(auth: AuthManager) -> Result<HttpResponse, AuthError> {
    let sessions = match auth.sessions().await {
        Err(err) if err.is_not_logged_in() => Vec::new(),
        other => other?,
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "sessions": sessions })))
}

/// `DELETE /me/sessions`: log out everywhere.
async fn end_my_sessions(auth: AuthManager) -> Result<HttpResponse, AuthError> {
    let ended = match auth.end_all_sessions().await {
        Err(err) if err.is_not_logged_in() => 0,
        other => other?,
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "ended": ended })))
}

/// The protected API the demo calls with the user's access token (`demo.protectedApi`).
#[derive(Clone)]
struct ProtectedApi(Option<String>);

async fn whoami(
    _login: Authenticated,
    auth: AuthManager,
    api: web::Data<ProtectedApi>,
) -> actix_web::Result<HttpResponse> {
    let Some(url) = api.0.clone() else {
        return Ok(HttpResponse::NotFound().body("demo.protectedApi is not configured"));
    };
    let client = auth.http_client().await?;
    let response = client.get(url).send().await?;
    let status = actix_web::http::StatusCode::from_u16(response.status().as_u16())
        .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
    let body = response.text().await.map_err(AuthError::Request)?;
    Ok(HttpResponse::build(status)
        .content_type("application/json")
        .body(body))
}

/// The login links, one per configured broker.
#[derive(Clone)]
struct Brokers(Vec<String>);

async fn index(session: Session, user: User, brokers: web::Data<Brokers>) -> HttpResponse {
    let flashes = session.flashes::<String>().unwrap_or_default();
    let registry = Registry::global();
    let mut rows = String::new();
    for (key, text) in session.raw_entries() {
        let (type_name, json) = match registry.decode(&text) {
            Ok(decoded) => (decoded.type_name, decoded.json.to_string()),
            Err(err) => ("?".to_owned(), err.to_string()),
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>\n",
            escape(&key),
            escape(&type_name),
            escape(&json)
        ));
    }
    let flash_html: String = flashes
        .iter()
        .map(|m| format!("<p class=\"flash\">{}</p>", escape(m)))
        .collect();
    let cart = session
        .load::<Cart>(CART)
        .ok()
        .flatten()
        .unwrap_or_default();
    let cart_html: String = cart
        .items
        .iter()
        .map(|i| {
            format!(
                "<li><span class=\"sku\">{}</span> × <span class=\"qty\">{}</span></li>",
                escape(&i.sku),
                i.qty
            )
        })
        .collect();
    let auth_html = if user.is_logged_in() {
        format!(
            "<p>Logged in as <span id=\"user-name\">{}</span> via {}. \
             <a id=\"logout\" href=\"/core/auth/logout\">Log out</a></p>",
            escape(&user.name),
            escape(user.broker.as_deref().unwrap_or("?"))
        )
    } else if brokers.0.is_empty() {
        "<p>No identity broker is configured: see <code>examples/config/fake-auth.yml</code> \
         to log in.</p>"
            .to_owned()
    } else {
        let links: String = brokers
            .0
            .iter()
            .map(|b| {
                format!(
                    "<a class=\"login\" id=\"login-{b}\" href=\"/core/auth/login/{b}?redirecturl=/\">Log in with {b}</a> ",
                    b = escape(b)
                )
            })
            .collect();
        format!("<p id=\"guest\">Not logged in. {links}</p>")
    };
    let page = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Flamingo sessions demo</title>
<style>body{{font-family:sans-serif;max-width:48rem;margin:2rem auto}}td{{padding:0 .5rem}}.flash{{background:#fde;padding:.5rem}}</style>
</head><body>
<h1>Flamingo sessions demo</h1>
<div id="auth">{auth_html}</div>
<div id="flashes">{flash_html}</div>
<h2>Cart</h2><ul id="cart">{cart_html}</ul>
<form id="add-item" method="post" action="/form/cart">
  <input name="sku" placeholder="sku" required> <input name="qty" type="number" value="1" min="1" max="1000">
  <button type="submit">Add to cart</button>
</form>
<form id="add-flash" method="post" action="/form/flash">
  <input name="message" placeholder="flash message" required> <button type="submit">Flash</button>
</form>
<h2>Session</h2>
<table id="session"><tr><th>key</th><th>type</th><th>value</th></tr>
{rows}</table>
</body></html>"#
    );
    // The page shows session data: no cache (browser or proxy) may keep it.
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(page)
}

#[derive(Debug, Deserialize)]
struct ItemForm {
    sku: String,
    qty: i64,
}

async fn form_cart(session: Session, form: web::Form<ItemForm>) -> actix_web::Result<HttpResponse> {
    let form = form.into_inner();
    add_item(
        session,
        web::Json(AddItem {
            sku: form.sku,
            qty: form.qty,
        }),
    )
    .await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .finish())
}

async fn form_flash(
    session: Session,
    form: web::Form<FlashMessage>,
) -> actix_web::Result<HttpResponse> {
    add_flash(session, web::Json(form.into_inner())).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .finish())
}

fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    ErrorBadRequest(format!("invalid JSON body: {err}"))
}

/// Command line: `--addr HOST:PORT`, `--config FILE` (repeatable).
struct Args {
    addr: SocketAddr,
    configs: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: "127.0.0.1:8080".parse().expect("valid default"),
        configs: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--addr" => {
                let value = it.next().ok_or("--addr needs HOST:PORT")?;
                args.addr = value
                    .parse()
                    .map_err(|e| format!("--addr {value:?}: {e}"))?;
            }
            "--config" => args.configs.push(it.next().ok_or("--config needs a file")?),
            "-h" | "--help" => {
                println!("usage: demo [--addr 127.0.0.1:8080] [--config FILE]...");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    Ok(args)
}

/// The brokers the demo turns on when the config names none: Flamingo's fake broker.
const DEFAULT_BROKERS: &str = include_str!("config/fake-auth.yml");

/// The config from `files` and the environment; with the fake broker when they configure none.
fn load_config(files: &[String]) -> Result<config::Config, Box<dyn std::error::Error>> {
    let config = build_config(files, false)?;
    if !flamingo::auth::config::AuthConfig::from_config(&config)?
        .brokers
        .is_empty()
    {
        return Ok(config);
    }
    tracing::info!(
        "demo: no broker configured, so the fake broker is on (alice / alicepw, bob / bobpw)"
    );
    Ok(build_config(files, true)?)
}

fn build_config(
    files: &[String],
    default_brokers: bool,
) -> Result<config::Config, config::ConfigError> {
    // The demo's own defaults: plain http on loopback. The library default stays Secure. No
    // session secret: one written here would be public (see the module docs).
    let mut builder =
        config::Config::builder().set_default("flamingo.session.cookie.secure", false)?;
    if default_brokers {
        builder = builder.add_source(config::File::from_str(
            DEFAULT_BROKERS,
            config::FileFormat::Yaml,
        ));
    }
    for file in files {
        builder = builder.add_source(config::File::with_name(file));
    }
    builder
        .add_source(flamingo::session::config::environment())
        .build()
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = parse_args()?;
    let config = load_config(&args.configs)?;
    let sessions = Sessions::from_config(&config).await?;
    let auth = Auth::from_config(&config, &sessions)
        .await?
        .on_login(|event| async move {
            // Login listener: greet the user; the session (and the guest's cart) survive the login.
            let _ = event
                .session
                .add_flash(format!("Welcome, {}!", event.identity.subject()));
        });
    let brokers = Brokers(
        auth.brokers()
            .into_iter()
            .map(|(name, _)| name.to_owned())
            .collect(),
    );
    let protected_api = ProtectedApi(config.get_string("demo.protectedApi").ok());
    if !sessions.config().cookie.secure {
        tracing::warn!("demo: cookie.secure is off so that the demo works on plain http");
    }
    tracing::info!(addr = %args.addr, backend = sessions.backend().name(), "demo listening on http://{}", args.addr);
    let workers = std::env::var("DEMO_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(2);
    HttpServer::new(move || {
        App::new()
            .app_data(
                web::JsonConfig::default()
                    .limit(64 * 1024)
                    .error_handler(json_error),
            )
            .app_data(web::FormConfig::default().limit(16 * 1024))
            .configure(sessions.configure())
            .configure(|cfg| auth.configure(cfg))
            .app_data(web::Data::new(brokers.clone()))
            .app_data(web::Data::new(protected_api.clone()))
            .wrap(sessions.middleware())
            .route("/", web::get().to(index))
            .route("/me", web::get().to(me))
            .route("/me/sessions", web::get().to(my_sessions))
            .route("/me/sessions", web::delete().to(end_my_sessions))
            .route("/api/whoami", web::get().to(whoami))
            .route("/counter", web::get().to(counter))
            .route("/cart/items", web::post().to(add_item))
            .route("/cart", web::get().to(get_cart))
            .route("/cart", web::delete().to(clear_cart))
            .route("/flash", web::post().to(add_flash))
            .route("/flash", web::get().to(take_flashes))
            .route("/kv/{key}", web::put().to(put_kv))
            .route("/kv", web::get().to(get_kv))
            .route("/form/cart", web::post().to(form_cart))
            .route("/form/flash", web::post().to(form_flash))
    })
    .workers(workers)
    .bind(args.addr)?
    .run()
    .await?;
    Ok(())
}
