// tillsyn's case officer's view: live updates, nothing else. The server
// sends an event on /events (Server-Sent Events) whenever the case store
// commits new alerts; the page then fetches itself again and swaps its
// #live-content for the new one, keeping the keyboard focus where it was,
// and says so in the #live-status live region. Without this script the
// pages work the same, and a reload shows new alerts.
(function () {
  "use strict";
  var region = document.getElementById("live-content");
  var status = document.getElementById("live-status");
  if (!region || !status || !window.EventSource || !window.fetch || !window.DOMParser) {
    return;
  }
  var pending = 0;
  var timer = null;
  var busy = false;

  function two(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function announce(n) {
    var now = new Date();
    var time = two(now.getHours()) + ":" + two(now.getMinutes()) + ":" + two(now.getSeconds());
    var template = n === 1 ? status.dataset.one : n > 1 ? status.dataset.many : status.dataset.plain;
    status.textContent = template.replace("{time}", time).replace("{n}", String(n));
  }

  // What has the focus inside the region, to find it again after the swap.
  function focusKey() {
    var el = document.activeElement;
    if (!el || !region.contains(el)) {
      return null;
    }
    if (el.id) {
      return "#" + CSS.escape(el.id);
    }
    var href = el.getAttribute("href");
    return href ? '[href="' + CSS.escape(href) + '"]' : null;
  }

  function refresh() {
    timer = null;
    if (busy) {
      timer = setTimeout(refresh, 250);
      return;
    }
    busy = true;
    var n = pending;
    pending = 0;
    fetch(window.location.href, { headers: { Accept: "text/html" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live-content");
        if (!fresh) {
          return;
        }
        var key = focusKey();
        region.innerHTML = fresh.innerHTML;
        if (key) {
          var again = region.querySelector(key);
          if (again) {
            again.focus();
          }
        }
        announce(n);
      })
      .catch(function () {
        // Try again with the next event; nothing is lost meanwhile.
        pending += n;
      })
      .then(function () {
        busy = false;
      });
  }

  function schedule(n) {
    pending += n;
    if (!timer) {
      timer = setTimeout(refresh, 300);
    }
  }

  var source = new EventSource("/events");
  var opened = false;
  source.addEventListener("open", function () {
    // Connected again after a break: changes may have been missed.
    if (opened) {
      schedule(0);
    }
    opened = true;
    document.documentElement.setAttribute("data-live", "connected");
  });
  source.addEventListener("error", function () {
    document.documentElement.setAttribute("data-live", "reconnecting");
  });
  source.addEventListener("change", function (event) {
    schedule(parseInt(event.data, 10) || 0);
  });
  // The server reconnected to the store and may have missed changes.
  source.addEventListener("resync", function () {
    schedule(0);
  });
})();
