// htmx does not swap a 4xx/5xx answer and says nothing when the server cannot be
// reached: without this, a failed click looks like a click that did nothing.
(function () {
  "use strict";

  var DRAFT_KEY = "cachesite:extract-draft";

  function explain(status) {
    if (status === 403) {
      return "The server answered 403: your session or form expired; reload the page and try again.";
    }
    if (status === 404) {
      return "The server answered 404: what you acted on no longer exists; reload the page.";
    }
    if (status === 413 || status === 400) {
      return "The server answered " + status + ": it refused the request as sent; check the form and try again.";
    }
    if (status >= 500) {
      return "The server answered " + status + ": something failed on the server; try again in a moment, or reload the page.";
    }
    return "The server answered " + status + "; reload the page and try again.";
  }

  function show(message) {
    var region = document.getElementById("request-problem");
    if (!region) { return; }
    region.textContent = message;
    region.hidden = false;
  }

  function clear() {
    var region = document.getElementById("request-problem");
    if (region && !region.hidden) {
      region.hidden = true;
      region.textContent = "";
    }
  }

  function extractText() {
    return document.querySelector("#extract-form textarea[name=text]");
  }

  document.addEventListener("htmx:responseError", function (event) {
    show(explain(event.detail.xhr.status));
  });
  document.addEventListener("htmx:sendError", function () {
    show("Could not reach the server; check your connection and try again.");
  });
  document.addEventListener("htmx:beforeRequest", clear);

  // An expired session answers htmx with HX-Redirect to the login page, a full page
  // load: keep the typed text for this tab, to put back when Extract opens again.
  document.addEventListener("htmx:beforeOnLoad", function (event) {
    var text = extractText();
    if (text && text.value && event.detail.xhr.getResponseHeader("HX-Redirect")) {
      sessionStorage.setItem(DRAFT_KEY, text.value);
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var draft = sessionStorage.getItem(DRAFT_KEY);
    var text = extractText();
    if (draft === null || !text) { return; }
    sessionStorage.removeItem(DRAFT_KEY);
    if (!text.value) {
      text.value = draft;
      show("Your session had expired: the text you typed was kept; send it again.");
    }
  });
})();
