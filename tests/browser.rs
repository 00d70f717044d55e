//! The demo in a real browser: headless Chromium driven through chromedriver. On failure a
//! screenshot is saved under `target/browser-failures/`.

mod support;

use std::panic::AssertUnwindSafe;

use fantoccini::{error::CmdError, Locator};
use futures_util::FutureExt as _;
use support::{browser::Browser, demo::Demo};

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
        form.submit().await?;
        c.wait().for_element(Locator::Css("#cart")).await?;
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
    form.submit().await?;
    c.wait().for_element(Locator::Css("#flashes")).await?;
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
