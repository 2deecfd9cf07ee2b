"""Swagger UI at /docs: opens without the key (it holds no data), loads nothing from elsewhere and logs no error;
the key given in *Authorize* makes *Try it out* work, and it is kept nowhere beyond the page."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from browser.harness import ViewerStack, assert_no_console_errors, screenshot, visited_urls, wait_for, wait_until

CHARGERS_GET = "//div[contains(@class, 'opblock-get')][.//*[@data-path='/chargers']]"


def test_swagger_ui_opens_without_the_key_and_tries_get_chargers_with_the_authorized_key(
    viewer_stack: ViewerStack, chrome: WebDriver
) -> None:
    chrome.get(f"{viewer_stack.api_url}/docs")
    title = wait_for(chrome, ".swagger-ui .info .title")
    assert "chargelog API" in title.text
    # Every resource the page loaded came from the API itself.
    assert all(url.startswith(viewer_stack.api_url) for url in visited_urls(chrome)), visited_urls(chrome)
    screenshot(chrome, "api-docs")

    chrome.find_element(By.CSS_SELECTOR, ".scheme-container button.authorize").click()
    key_field = wait_for(chrome, ".modal-ux .auth-container input")
    key_field.send_keys(viewer_stack.api_key)
    chrome.find_element(By.CSS_SELECTOR, ".modal-ux .auth-btn-wrapper button.authorize").click()
    chrome.find_element(By.CSS_SELECTOR, ".modal-ux button.btn-done").click()
    wait_until(chrome, lambda d: not d.find_elements(By.CSS_SELECTOR, ".modal-ux"), "the Authorize dialog stayed")

    operation = chrome.find_element(By.XPATH, CHARGERS_GET)
    operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    wait_for(chrome, "button.try-out__btn").click()
    wait_for(chrome, "button.execute").click()
    status = wait_for(chrome, ".live-responses-table .response .response-col_status", timeout=30)
    assert status.text.strip().startswith("200"), status.text
    body = chrome.find_element(By.CSS_SELECTOR, ".live-responses-table .response-col_description pre").text
    assert '"chargers"' in body

    assert_no_console_errors(chrome)
    # Swagger UI sent the key in the header it was given: in no URL, and not persisted past the page.
    assert not any(viewer_stack.api_key in url for url in visited_urls(chrome))
    assert viewer_stack.api_key not in chrome.current_url
    stored = chrome.execute_script("return JSON.stringify({...localStorage}) + JSON.stringify({...sessionStorage})")
    assert viewer_stack.api_key not in stored
    assert not any(viewer_stack.api_key in cookie.get("value", "") for cookie in chrome.get_cookies())


def test_swagger_ui_without_authorize_is_refused_by_the_api(viewer_stack: ViewerStack, chrome: WebDriver) -> None:
    chrome.get(f"{viewer_stack.api_url}/docs")
    operation = wait_for(chrome, ".swagger-ui .info .title") and chrome.find_element(By.XPATH, CHARGERS_GET)
    operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    wait_for(chrome, "button.try-out__btn").click()
    wait_for(chrome, "button.execute").click()
    status = wait_for(chrome, ".live-responses-table .response .response-col_status", timeout=30)
    assert status.text.strip().startswith("403"), status.text
    assert_no_console_errors(chrome, expected=[r"/chargers - Failed to load resource: .* 403"])
