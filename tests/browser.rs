//! The demo in a real browser: headless Chromium driven through chromedriver. On failure a
//! screenshot is saved under `target/browser-failures/`.

mod support;

use std::panic::AssertUnwindSafe;

use fantoccini::{error::CmdError, Locator};
use futures_util::FutureExt as _;
use support::{
    browser::Browser,
    demo::{free_port, Demo},
    oidc::{client, OidcProvider, ProviderOptions},
};

/// Waits until the page that was current when `before` was taken has been replaced (a form
/// submit or a click navigated), then for the new page's body.
async fn wait_for_navigation(
    browser: &Browser,
    before: fantoccini::elements::Element,
) -> Result<(), CmdError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while before.tag_name().await.is_ok() {
        if std::time::Instant::now() > deadline {
            return Err(CmdError::WaitTimeout);
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    browser
        .client
        .wait()
        .for_element(Locator::Css("body"))
        .await?;
    Ok(())
}

/// Submits `form` and waits for the page it leads to.
async fn submit(browser: &Browser, form: fantoccini::elements::Form) -> Result<(), CmdError> {
    let before = browser.client.find(Locator::Css("html")).await?;
    form.submit().await?;
    wait_for_navigation(browser, before).await
}

/// Clicks the element matching `css` and waits for the page it leads to.
async fn click(browser: &Browser, css: &str) -> Result<(), CmdError> {
    let before = browser.client.find(Locator::Css("html")).await?;
    browser
        .client
        .find(Locator::Css(css))
        .await?
        .click()
        .await?;
    wait_for_navigation(browser, before).await
}

async fn text(browser: &Browser, css: &str) -> Result<String, CmdError> {
    browser.client.find(Locator::Css(css)).await?.text().await
}

async fn cart_and_flash(browser: &Browser, demo: &Demo) -> Result<(), CmdError> {
    let c = &browser.client;
    c.goto(&demo.url("/")).await?;
    assert_eq!(c.title().await?, "Flamingo sessions demo");

    // Add two items through the form; the page shows the cart.
    for (sku, qty) in [("green-tea", "2"), ("oolong", "1"), ("green-tea", "3")] {
        let form = c.form(Locator::Css("#add-item")).await?;
        form.set_by_name("sku", sku).await?;
        form.set_by_name("qty", qty).await?;
        submit(browser, form).await?;
    }
    let cart = text(browser, "#cart").await?;
    assert!(
        cart.contains("green-tea × 5"),
        "cart shows the summed quantity: {cart:?}"
    );
    assert!(cart.contains("oolong × 1"), "cart: {cart:?}");

    // A flash message is shown exactly once.
    let form = c.form(Locator::Css("#add-flash")).await?;
    form.set_by_name("message", "Saved in the browser").await?;
    submit(browser, form).await?;
    assert_eq!(text(browser, "#flashes").await?, "Saved in the browser");
    c.refresh().await?;
    assert_eq!(
        text(browser, "#flashes").await?,
        "",
        "a flash is shown once"
    );

    // The session table decodes the derived type through the registry.
    let table = text(browser, "#session").await?;
    assert!(table.contains("demo.Cart"), "session table: {table:?}");
    Ok(())
}

/// Runs a scenario; on an error or a failed assertion, saves a screenshot and fails with it.
async fn run_or_screenshot(
    browser: &Browser,
    demo: &Demo,
    name: &str,
    scenario: impl std::future::Future<Output = Result<(), CmdError>>,
) {
    let failure = match AssertUnwindSafe(scenario).catch_unwind().await {
        Ok(Ok(())) => return,
        Ok(Err(err)) => err.to_string(),
        Err(panic) => panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default(),
    };
    let shot = browser.screenshot(name).await;
    panic!(
        "browser scenario {name} failed: {failure}\nscreenshot: {shot:?}\ndemo log:\n{}",
        demo.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_cart_and_flash() {
    let demo = Demo::start("");
    let browser = Browser::start().await;
    run_or_screenshot(
        &browser,
        &demo,
        "cart_and_flash",
        cart_and_flash(&browser, &demo),
    )
    .await;
    browser.close().await;
}

const FAKE_BROKER: &str = "core.auth.web.broker:
  - broker: fake
    typ: fake
    userConfig:
      alice:
        password: alicepw
        claims: { name: Alice Anderson, email: alice@example.com }
";

async fn fake_login_and_logout(browser: &Browser, demo: &Demo) -> Result<(), CmdError> {
    let c = &browser.client;
    c.goto(&demo.url("/")).await?;
    // A guest adds to the cart, then logs in: the cart survives the login (new session ID,
    // same data) and the login listener's flash greets the user once.
    let form = c.form(Locator::Css("#add-item")).await?;
    form.set_by_name("sku", "guest-item").await?;
    form.set_by_name("qty", "1").await?;
    submit(browser, form).await?;
    click(browser, "#login-fake").await?;
    let login = c.form(Locator::Css("form")).await?;
    login.set_by_name("username", "alice").await?;
    login.set_by_name("password", "alicepw").await?;
    submit(browser, login).await?;
    assert_eq!(text(browser, "#user-name").await?, "Alice Anderson");
    assert_eq!(text(browser, "#flashes").await?, "Welcome, alice!");
    assert!(
        text(browser, "#cart").await?.contains("guest-item × 1"),
        "the cart survives the login"
    );
    click(browser, "#logout").await?;
    assert!(text(browser, "#auth").await?.contains("Not logged in"));
    assert!(
        text(browser, "#cart").await?.contains("guest-item × 1"),
        "the cart survives the logout, as in Flamingo"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_login_and_logout_with_the_fake_broker() {
    let demo = Demo::start(FAKE_BROKER);
    let browser = Browser::start().await;
    run_or_screenshot(
        &browser,
        &demo,
        "fake_login",
        fake_login_and_logout(&browser, &demo),
    )
    .await;
    browser.close().await;
}

async fn oidc_login_and_logout(browser: &Browser, demo: &Demo) -> Result<(), CmdError> {
    let c = &browser.client;
    c.goto(&demo.url("/")).await?;
    c.find(Locator::Css("#login-oidc")).await?.click().await?;
    // oidc-provider's development forms: login, then consent.
    c.wait()
        .for_element(Locator::Css("input[name=login]"))
        .await?;
    let login = c.form(Locator::Css("form")).await?;
    login.set_by_name("login", "alice").await?;
    login.set_by_name("password", "any").await?;
    login.submit().await?;
    c.wait()
        .for_element(Locator::Css("button[type=submit], #user-name"))
        .await?;
    if c.find(Locator::Css("#user-name")).await.is_err() {
        c.find(Locator::Css("button[type=submit]"))
            .await?
            .click()
            .await?;
    }
    c.wait().for_element(Locator::Css("#user-name")).await?;
    assert_eq!(text(browser, "#user-name").await?, "Alice Anderson");
    // The protected API through the user's access token.
    c.goto(&demo.url("/api/whoami")).await?;
    let body = c.source().await?;
    assert!(body.contains("\"sub\":\"alice\""), "whoami: {body}");
    // Logout ends the session here and at the provider (its confirmation page).
    c.goto(&demo.url("/")).await?;
    c.find(Locator::Css("#logout")).await?.click().await?;
    c.wait()
        .for_element(Locator::Css("button[name=logout], #guest"))
        .await?;
    if c.find(Locator::Css("#guest")).await.is_err() {
        c.find(Locator::Css("button[name=logout]"))
            .await?
            .click()
            .await?;
    }
    c.wait().for_element(Locator::Css("#guest")).await?;
    // Logged out at the provider too: logging in again asks for the login form.
    c.find(Locator::Css("#login-oidc")).await?.click().await?;
    c.wait()
        .for_element(Locator::Css("input[name=login]"))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_login_and_logout_through_oidc_provider_forms() {
    let port = free_port();
    let app = format!("http://127.0.0.1:{port}");
    let provider = OidcProvider::start(ProviderOptions {
        clients: vec![client("demo", "demo-secret", &app, "oidc")],
        ..ProviderOptions::default()
    });
    let yaml = format!(
        "core.auth.web.broker:\n  - broker: oidc\n    typ: oidc\n    clientID: demo\n    \
         clientSecret: demo-secret\n    endpoint: {issuer}\n    claims:\n      idToken: {{ name: name, email: email }}\n\
         demo.protectedApi: {whoami}\n",
        issuer = provider.issuer(),
        whoami = provider.whoami_url()
    );
    let demo = Demo::start_at(port, &yaml);
    let browser = Browser::start().await;
    let scenario = oidc_login_and_logout(&browser, &demo);
    run_or_screenshot(&browser, &demo, "oidc_login", scenario).await;
    browser.close().await;
    drop(provider);
}
