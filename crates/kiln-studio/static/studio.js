// Kiln studio: live parts of a page. An element with data-live="MS" is refreshed every MS
// milliseconds by fetching the page again and swapping in the new element, so a running job's
// status, metrics and tables move without a reload. Focus and form input are left alone.
(function () {
  "use strict";
  function refresh(el, every) {
    setTimeout(async function tick() {
      const active = document.activeElement;
      if (active && (active.tagName === "INPUT" || active.tagName === "TEXTAREA")) {
        return refresh(el, every); // the user is typing: try again later
      }
      try {
        const res = await fetch(window.location.href, { headers: { "X-Kiln-Live": "1" } });
        if (res.ok) {
          const doc = new DOMParser().parseFromString(await res.text(), "text/html");
          const fresh = doc.getElementById(el.id);
          if (fresh) {
            // Only what changed is replaced: a quiet page keeps its elements (and whatever
            // the user has selected in them).
            if (fresh.innerHTML !== el.innerHTML) el.innerHTML = fresh.innerHTML;
            const next = fresh.getAttribute("data-live");
            if (!next) return; // no longer live (the run ended)
            every = parseInt(next, 10) || every;
          }
        }
      } catch (e) {
        // The server may be restarting; keep trying.
      }
      refresh(el, every);
    }, every);
  }
  document.querySelectorAll("[data-live]").forEach(function (el) {
    refresh(el, parseInt(el.getAttribute("data-live"), 10) || 5000);
  });
})();
