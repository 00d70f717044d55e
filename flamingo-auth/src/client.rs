//! [`AuthHttpClient`]: reqwest with the user's access token.

use std::{fmt, rc::Rc, time::Duration};

use futures_util::future::LocalBoxFuture;
use openidconnect::AccessToken;
use reqwest::{header::HeaderValue, Method, RequestBuilder, StatusCode};

use crate::error::AuthError;

/// Where an [`AuthHttpClient`] gets the user's access token: as it is (refreshed first when it
/// expired), or refreshed now because the API refused it. The `AuthManager` is one.
pub(crate) trait TokenSource: fmt::Debug {
    /// The access token; with `refresh`, a freshly refreshed one.
    fn token(&self, refresh: bool) -> LocalBoxFuture<'_, Result<AccessToken, AuthError>>;
}

/// An HTTP client that sends the logged-in user's access token as
/// `Authorization: Bearer <token>` (from [`AuthManager::http_client`](crate::AuthManager::http_client)).
///
/// Before each request the token is refreshed when it expired; when the API still answers
/// `401`, the token is refreshed once more and the request repeated (if its body can be
/// cloned). Refreshed tokens are written back to the session. The client lives for one request
/// of your app (it holds that request's session).
///
/// Every request is bounded by `core.auth.web.httpClient.requestTimeout` (default 30 s) and,
/// with the default client, connecting by `connectTimeout` (default 5 s): an API that never
/// answers gives [`AuthError::Request`] instead of holding your handler. Set another timeout
/// for one request with `.map(|r| r.timeout(...))`.
///
/// # Examples
///
/// ```
/// # async fn f(auth: flamingo_auth::AuthManager) -> Result<(), flamingo_auth::AuthError> {
/// let client = auth.http_client().await?;
/// let profile: serde_json::Value = client
///     .get("https://api.example.com/me")
///     .map(|request| request.header("Accept", "application/json"))
///     .send()
///     .await?
///     .json()
///     .await
///     .map_err(flamingo_auth::AuthError::Request)?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AuthHttpClient {
    client: reqwest::Client,
    timeout: Duration,
    tokens: Rc<dyn TokenSource>,
}

impl AuthHttpClient {
    pub(crate) fn new(
        client: reqwest::Client,
        timeout: Duration,
        tokens: Rc<dyn TokenSource>,
    ) -> Self {
        AuthHttpClient {
            client,
            timeout,
            tokens,
        }
    }

    /// A request with any method.
    pub fn request<U: reqwest::IntoUrl>(&self, method: Method, url: U) -> AuthRequest {
        AuthRequest {
            builder: self.client.request(method, url).timeout(self.timeout),
            client: self.clone(),
        }
    }

    /// A `GET` request.
    pub fn get<U: reqwest::IntoUrl>(&self, url: U) -> AuthRequest {
        self.request(Method::GET, url)
    }

    /// A `POST` request.
    pub fn post<U: reqwest::IntoUrl>(&self, url: U) -> AuthRequest {
        self.request(Method::POST, url)
    }

    /// A `PUT` request.
    pub fn put<U: reqwest::IntoUrl>(&self, url: U) -> AuthRequest {
        self.request(Method::PUT, url)
    }

    /// A `DELETE` request.
    pub fn delete<U: reqwest::IntoUrl>(&self, url: U) -> AuthRequest {
        self.request(Method::DELETE, url)
    }

    /// The reqwest client underneath (without the token).
    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }
}

/// A request of an [`AuthHttpClient`]: a `reqwest::RequestBuilder` that gets the bearer token
/// when sent.
#[derive(Debug)]
#[must_use = "call .send().await"]
pub struct AuthRequest {
    builder: RequestBuilder,
    client: AuthHttpClient,
}

impl AuthRequest {
    /// Changes the underlying `reqwest::RequestBuilder` (headers, body, query, timeout, ...).
    pub fn map(self, f: impl FnOnce(RequestBuilder) -> RequestBuilder) -> Self {
        AuthRequest {
            builder: f(self.builder),
            client: self.client,
        }
    }

    /// Adds a header.
    pub fn header(self, name: reqwest::header::HeaderName, value: HeaderValue) -> Self {
        self.map(|b| b.header(name, value))
    }

    /// Sends a JSON body.
    pub fn json<T: serde::Serialize + ?Sized>(self, body: &T) -> Self {
        self.map(|b| b.json(body))
    }

    /// Adds query parameters.
    pub fn query<T: serde::Serialize + ?Sized>(self, query: &T) -> Self {
        self.map(|b| b.query(query))
    }

    /// Sends the request with the user's access token.
    ///
    /// # Errors
    ///
    /// [`AuthError::NotLoggedIn`] when the user is not (or no longer) logged in,
    /// [`AuthError::Provider`] when a refresh failed, [`AuthError::Request`] when the request
    /// itself failed. An error status of the API is not an error: check the response.
    pub async fn send(self) -> Result<reqwest::Response, AuthError> {
        let token = self.client.tokens.token(false).await?;
        let mut request = self
            .builder
            .bearer_auth(token.secret())
            .build()
            .map_err(AuthError::Request)?;
        let retry = request.try_clone();
        let response = self
            .client
            .client
            .execute(request)
            .await
            .map_err(AuthError::Request)?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(mut retry) = retry else {
            return Ok(response);
        };
        tracing::debug!("API answered 401: refreshing the access token once");
        let token = match self.client.tokens.token(true).await {
            Ok(token) => token,
            // The first answer is the better one to give back when the refresh fails.
            Err(err) if err.is_provider_failure() => return Err(err),
            Err(_) => return Ok(response),
        };
        let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", token.secret())) else {
            return Ok(response);
        };
        retry
            .headers_mut()
            .insert(reqwest::header::AUTHORIZATION, value);
        request = retry;
        self.client
            .client
            .execute(request)
            .await
            .map_err(AuthError::Request)
    }
}
