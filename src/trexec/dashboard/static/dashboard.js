// trexec dashboard: the pages are complete without this script. It only adds
// live updates (re-fetching the page's live region, with backoff) and the write
// buttons, which send the X-Trexec-Write header the server requires (spec §12.4).
"use strict";
(function () {
  const FAST = 1000, SLOW = 5000, BROKEN = 30000;
  const status = document.getElementById("live-status");
  const live = document.querySelector("[data-live]");
  let delay = FAST, last = null;

  function say(text) { if (status) status.textContent = text; }

  async function refresh() {
    const url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    try {
      const response = await fetch(url, { cache: "no-store", headers: { Accept: "text/html" } });
      const text = await response.text();
      if (!response.ok) {
        delay = Math.min(delay * 2, BROKEN);
        say("store unavailable (HTTP " + response.status + "), retrying");
      } else {
        if (text !== last) {
          live.innerHTML = text;
          delay = last === null ? delay : FAST;  // it moves: look again soon
          last = text;
        } else {
          delay = Math.min(delay * 1.5, SLOW);
        }
        say("live · " + new Date().toLocaleTimeString());
      }
    } catch (error) {
      delay = Math.min(delay * 2, BROKEN);
      say("dashboard unreachable, retrying");
    }
    window.setTimeout(refresh, document.hidden ? Math.max(delay, SLOW) : delay);
  }

  async function write(id, what, body) {
    const result = document.querySelector(".action-result");
    const options = { method: "POST", headers: { "X-Trexec-Write": "1" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    try {
      const response = await fetch("/api/instances/" + encodeURIComponent(id) + "/" + what, options);
      const answer = await response.json();
      if (result) result.textContent = response.ok ? what + ": done" : what + ": " + answer.error;
    } catch (error) {
      if (result) result.textContent = what + ": " + error;
    }
    delay = FAST;
  }

  for (const element of document.querySelectorAll("[data-action]")) {
    element.hidden = false;
    if (element.dataset.action === "cancel") {
      element.addEventListener("click", () => {
        if (window.confirm("Cancel instance " + element.dataset.id + "?")) write(element.dataset.id, "cancel");
      });
    } else if (element.dataset.action === "signal") {
      element.addEventListener("submit", (event) => {
        event.preventDefault();
        let payload;
        try { payload = JSON.parse(element.elements.payload.value || "null"); }
        catch (error) { document.querySelector(".action-result").textContent = "payload: not JSON"; return; }
        write(element.dataset.id, "signal", { name: element.elements.name.value, payload: payload });
      });
    }
  }
  if (live) window.setTimeout(refresh, delay);
})();
