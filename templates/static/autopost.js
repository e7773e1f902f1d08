// Submits the form marked id="autopost" as soon as the page loads (the
// button stays for browsers without scripts).
(function () {
  var f = document.getElementById("autopost");
  if (f) { f.submit(); }
})();
