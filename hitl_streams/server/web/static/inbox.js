// hitl-streams review inbox: optional live refresh of the request list (server-sent events).
// A progressive enhancement: without JavaScript the list is a plain page with links.
(function () {
  "use strict";
  var list = document.getElementById("requests");
  if (!list || !list.getAttribute("data-live") || !window.EventSource || !window.fetch || !window.DOMParser) return;
  var source = new EventSource(list.getAttribute("data-live"));
  var note = document.getElementById("live");
  if (note) note.hidden = false;
  var busy = false;
  source.addEventListener("changed", function () {
    if (busy) return;
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.getElementById("requests");
        var count = page.querySelector(".pending-count");
        var current = document.querySelector(".pending-count");
        if (fresh) list.replaceChildren.apply(list, Array.prototype.slice.call(fresh.childNodes).map(function (n) {
          return document.adoptNode(n);
        }));
        if (count && current) current.textContent = count.textContent;
      })
      .catch(function () {})
      .then(function () { busy = false; });
  });
})();
