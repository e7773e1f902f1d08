// "Copy" buttons: <button data-copy="ID"> copies the value of the element ID.
// A file, not an inline handler, because the pages' CSP allows only 'self' scripts.
(function () {
  document.querySelectorAll("button[data-copy]").forEach(function (b) {
    b.addEventListener("click", function () {
      var el = document.getElementById(b.getAttribute("data-copy"));
      if (!el) { return; }
      var done = function () { b.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(el.value).then(done);
      } else {
        el.select();
        if (document.execCommand("copy")) { done(); }
      }
    });
  });
})();
