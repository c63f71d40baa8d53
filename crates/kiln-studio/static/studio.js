// Kiln studio: live parts of a page. An element with data-live="MS" is refreshed every MS
// milliseconds by fetching the page again and swapping in the new element, so a running job's
// status, metrics and tables move without a reload. Focus and form input are left alone.
(function () {
  "use strict";
  // The user's state a swap must keep: ticked checkboxes, by name and value.
  function checkedBoxes(el) {
    return Array.from(el.querySelectorAll("input[type=checkbox]:checked")).map(function (b) {
      return b.name + "=" + b.value;
    });
  }
  function refresh(el, every, failures) {
    setTimeout(async function tick() {
      // Hidden tabs do not poll; they catch up when shown again.
      if (document.hidden) return refresh(el, every, failures);
      try {
        const res = await fetch(window.location.href, { headers: { "X-Kiln-Live": "1" } });
        if (!res.ok) throw new Error(String(res.status));
        const doc = new DOMParser().parseFromString(await res.text(), "text/html");
        const fresh = doc.getElementById(el.id);
        if (!fresh) return; // the page no longer has a live part
        // Someone is working inside it (typing, a focused control): leave it for now.
        const busy = el.contains(document.activeElement) && document.activeElement !== document.body;
        if (!busy && fresh.innerHTML !== el.innerHTML) {
          const kept = checkedBoxes(el);
          el.innerHTML = fresh.innerHTML;
          el.querySelectorAll("input[type=checkbox]").forEach(function (b) {
            if (kept.indexOf(b.name + "=" + b.value) >= 0) b.checked = true;
          });
        }
        const next = fresh.getAttribute("data-live");
        if (!next) return; // no longer live (the run ended)
        refresh(el, parseInt(next, 10) || every, 0);
      } catch (e) {
        // The server may be restarting: try again, less often each time (up to a minute).
        refresh(el, every, Math.min(failures + 1, 5));
      }
    }, every * Math.pow(2, failures));
  }
  document.querySelectorAll("[data-live]").forEach(function (el) {
    refresh(el, parseInt(el.getAttribute("data-live"), 10) || 5000, 0);
  });
})();

// Job logs: streamed from the log API as they are written (the server holds the answer open
// while the job runs), appended to the <pre>, which keeps to the bottom unless scrolled up.
(function () {
  "use strict";
  document.querySelectorAll("[data-log-url]").forEach(async function (pre) {
    const follow = pre.getAttribute("data-follow") === "true";
    try {
      const res = await fetch(pre.getAttribute("data-log-url") + "?follow=" + follow);
      if (!res.ok || !res.body) return;
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
        pre.append(decoder.decode(value, { stream: true }));
        if (atBottom) pre.scrollTop = pre.scrollHeight;
      }
      pre.append(decoder.decode()); // a character split across the last chunk
      pre.setAttribute("data-done", "true");
    } catch (e) {
      pre.setAttribute("data-error", String(e));
    }
  });
})();

// An endpoint's test form: sends the body to the scoring URI with the endpoint's key (or
// token) and shows the status, the deployment that answered and the answer.
(function () {
  "use strict";
  const form = document.getElementById("score-form");
  if (!form) return;
  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const out = document.getElementById("score-response");
    const button = document.getElementById("score-send");
    out.textContent = "…";
    button.disabled = true; // one request at a time, so the answer shown is this one's
    try {
      const name = form.getAttribute("data-endpoint");
      const credRes = await fetch("/api/v1/online-endpoints/" + encodeURIComponent(name) + "/credentials");
      if (!credRes.ok) throw new Error("cannot read the endpoint's credentials (" + credRes.status + ")");
      const creds = await credRes.json();
      const headers = { "Content-Type": "application/json", "Authorization": "Bearer " + (creds.primaryKey || creds.accessToken) };
      const dep = document.getElementById("score-deployment").value;
      if (dep) headers["azureml-model-deployment"] = dep;
      const res = await fetch(form.getAttribute("data-scoring-path"), { method: "POST", headers: headers, body: document.getElementById("score-body").value });
      const text = await res.text();
      let shown = text;
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON */ }
      out.textContent = res.status + " " + res.statusText + " · " + (res.headers.get("azureml-model-deployment") || "no deployment") + "\n" + shown;
      out.setAttribute("data-status", String(res.status));
    } catch (e) {
      out.textContent = "the request failed: " + e;
    } finally {
      button.disabled = false;
    }
  });
})();
