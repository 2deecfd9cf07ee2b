"""The viewer's shell (app.js, api.js) in Chromium: it asks for the API key, refuses a wrong one in one line and
asks again, keeps the right one in sessionStorage only (no URL, no localStorage, no cookie), forgets it on request,
and its key form is reachable and labelled from the keyboard. Independent of the views' content: the route used,
#/no-such-view, loads no view module."""

from __future__ import annotations

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from browser.harness import (
    KEY_FORM,
    KEY_INPUT,
    ViewerStack,
    assert_no_console_errors,
    give_key,
    open_viewer,
    screenshot,
    visited_urls,
    wait_for,
    wait_for_key_accepted,
    wait_until,
)

NO_VIEW = "#/no-such-view"
STORAGE_KEY = "chargelog.apiKey"


def _stored(driver: WebDriver) -> dict[str, dict[str, str]]:
    return driver.execute_script("return {local: {...localStorage}, session: {...sessionStorage}}")


def test_the_viewer_asks_for_the_key_refuses_a_wrong_one_and_opens_with_the_right_one(
    viewer_stack: ViewerStack, chrome: WebDriver
) -> None:
    chrome.get(viewer_stack.viewer_url.removesuffix("/"))  # /ui: redirected to /ui/index.html
    wait_for(chrome, KEY_INPUT)
    assert chrome.current_url == f"{viewer_stack.api_url}/ui/index.html"
    assert chrome.find_element(By.CSS_SELECTOR, f"{KEY_FORM} h1").text == "API key"
    assert chrome.find_elements(By.CSS_SELECTOR, "#forget-key:not([hidden])") == []
    assert_no_console_errors(chrome)
    screenshot(chrome, "key-form")

    give_key(chrome, "not-the-key")
    error = wait_for(chrome, f"{KEY_FORM} .error[role=alert]")
    assert error.text == "The API refused this key: give it again."
    assert "\n" not in error.text
    assert chrome.find_element(By.CSS_SELECTOR, KEY_INPUT).get_attribute("value") == ""
    assert _stored(chrome)["session"] == {}
    assert_no_console_errors(chrome, expected=[r"/chargers - Failed to load resource: .* 403"])

    chrome.get(viewer_stack.viewer_url + NO_VIEW)
    give_key(chrome, viewer_stack.api_key)
    wait_for_key_accepted(chrome)
    assert wait_for(chrome, "#main .error").text == "No such view: no-such-view"
    assert wait_for(chrome, "#forget-key").text == "Forget key"
    assert chrome.current_url.endswith(NO_VIEW)
    assert_no_console_errors(chrome)


def test_the_key_is_in_session_storage_only_and_forget_key_removes_it(
    viewer_stack: ViewerStack, chrome: WebDriver
) -> None:
    key = viewer_stack.api_key
    open_viewer(chrome, viewer_stack, NO_VIEW)
    chrome.execute_script("location.hash = '#/another-view?x=1'")  # the shell routes again, with the kept key
    wait_until(chrome, lambda d: "another-view" in d.find_element(By.CSS_SELECTOR, "#main").text, "no re-route")
    assert _stored(chrome) == {"local": {}, "session": {STORAGE_KEY: key}}
    assert chrome.get_cookies() == []
    urls = visited_urls(chrome)
    assert any(url.endswith("/chargers") for url in urls), urls  # the key check went out ...
    assert not any(key in url for url in urls)  # ... with the key in a header, not in its URL
    assert key not in chrome.current_url
    history = chrome.execute_script("return history.length")
    for _ in range(history - 1):
        chrome.back()
        assert key not in chrome.current_url

    # A new tab shares nothing of the session: it asks again.
    chrome.switch_to.new_window("tab")
    chrome.get(viewer_stack.viewer_url + NO_VIEW)
    wait_for(chrome, KEY_INPUT)
    assert _stored(chrome)["session"] == {}
    chrome.close()
    chrome.switch_to.window(chrome.window_handles[0])

    chrome.get(viewer_stack.viewer_url + NO_VIEW)
    wait_for(chrome, "#forget-key").click()
    wait_for(chrome, KEY_INPUT)
    assert _stored(chrome) == {"local": {}, "session": {}}
    chrome.refresh()
    wait_for(chrome, KEY_INPUT)
    assert_no_console_errors(chrome)


def test_the_key_form_is_reachable_by_keyboard_with_visible_labels(
    viewer_stack: ViewerStack, chrome: WebDriver
) -> None:
    chrome.get(viewer_stack.viewer_url + NO_VIEW)
    wait_for(chrome, KEY_INPUT)
    # From the page's first stop (its skip link), as after loading it, Tab by Tab.
    chrome.execute_script("document.querySelector('a.skip').focus()")
    reached: list[str] = []
    for _ in range(12):
        ActionChains(chrome).send_keys(Keys.TAB).perform()
        active = chrome.switch_to.active_element
        reached.append(active.get_attribute("id") or active.tag_name + ":" + (active.text or ""))
        if active.get_attribute("type") == "submit":
            break
    assert "api-key" in reached, reached
    assert reached[-1] == "button:Open", reached
    field = chrome.find_element(By.CSS_SELECTOR, KEY_INPUT)
    label = field.find_element(By.XPATH, "ancestor::label")
    assert label.is_displayed()
    assert label.find_element(By.TAG_NAME, "span").text == "API key"
    assert chrome.execute_script("return arguments[0].labels[0].textContent.trim()", field) == "API key"
    # Enter in the field submits the form, as the button does.
    field.send_keys(viewer_stack.api_key, Keys.ENTER)
    wait_for_key_accepted(chrome)
    assert_no_console_errors(chrome)


def test_the_key_form_fits_a_phone_width_screen(viewer_stack: ViewerStack, phone_chrome: WebDriver) -> None:
    phone_chrome.get(viewer_stack.viewer_url)
    field = wait_for(phone_chrome, KEY_INPUT)
    width = phone_chrome.execute_script("return document.documentElement.clientWidth")
    scroll_width = phone_chrome.execute_script("return document.documentElement.scrollWidth")
    assert scroll_width <= width, "the page scrolls sideways on a phone"
    assert field.rect["x"] >= 0
    assert field.rect["x"] + field.rect["width"] <= width
    assert_no_console_errors(phone_chrome)
