//! `/core/auth/debug` (Flamingo's debug controller): the brokers and who is logged in where.
//! Mounted only when `core.auth.web.debugController` is `true`. It never shows tokens.

use std::fmt::Write as _;

use actix_web::{web, HttpRequest, HttpResponse};
use flamingo_session::Session;

use crate::auth::Auth;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(crate) async fn page(
    req: HttpRequest,
    session: Session,
    auth: web::Data<Auth>,
) -> HttpResponse {
    let identities = auth.identities(&req, &session).await;
    let mut html = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>core/auth debug</title></head><body>\
         <h1>core/auth</h1><h2>Brokers</h2><table><tr><th>broker</th><th>typ</th><th>identity</th><th></th></tr>",
    );
    for (name, typ) in auth.brokers() {
        let identity = identities.iter().find(|i| i.broker() == name);
        let name = escape(name);
        let _ = write!(
            html,
            "<tr><td>{name}</td><td>{typ}</td><td>{}</td><td><a href=\"/core/auth/login/{name}\">login</a> \
             <a href=\"/core/auth/logout/{name}\">logout</a></td></tr>",
            identity.map(|i| escape(i.subject())).unwrap_or_else(|| "-".to_owned()),
        );
    }
    html.push_str("</table><h2>Identities</h2><ul>");
    for identity in &identities {
        let claims = serde_json::to_string_pretty(identity.claims()).unwrap_or_default();
        let _ = write!(
            html,
            "<li>{} at {}<pre>{}</pre></li>",
            escape(identity.subject()),
            escape(identity.broker()),
            escape(&claims)
        );
    }
    html.push_str("</ul><p><a href=\"/core/auth/logout\">logout everywhere</a></p></body></html>");
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(html)
}
