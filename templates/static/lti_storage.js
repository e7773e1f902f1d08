// LTI platform storage (1EdTech "LTI Client Side postMessages"), for LMS
// frames whose browser blocks third-party cookies. The element #lti-storage
// says what to do:
//   data-mode="put": store data-key = data-value in the platform's storage,
//                    then go to data-next (the platform's OIDC endpoint);
//   data-mode="get": read data-key back and post #storage-form with it.
// Without an answer within two seconds (a platform without storage), the
// page goes on without it; the server then falls back to the one-time ticket.
(function () {
  var el = document.getElementById("lti-storage");
  if (!el) { return; }
  var mode = el.getAttribute("data-mode");
  var target = el.getAttribute("data-target");
  var origin = el.getAttribute("data-origin");
  var key = el.getAttribute("data-key");
  var id = "cg-" + Math.random().toString(36).slice(2) + Date.now().toString(36);
  var done = false;
  function finish(value) {
    if (done) { return; }
    done = true;
    if (mode === "put") {
      window.location.replace(el.getAttribute("data-next"));
    } else {
      var f = document.getElementById("storage-form");
      f.elements.lti_storage_value.value = value || "";
      f.submit();
    }
  }
  var frame = null;
  try {
    frame = target === "_parent" ? window.parent : window.parent.frames[target];
  } catch (e) {
    frame = null;
  }
  if (!frame || frame === window) { finish(""); return; }
  window.addEventListener("message", function (ev) {
    var d = ev.data;
    if (!d || typeof d !== "object" || d.message_id !== id) { return; }
    if (origin !== "*" && ev.origin !== origin) { return; }
    if (d.subject === "lti.put_data.response" || d.subject === "lti.get_data.response") {
      finish(d.error ? "" : d.value);
    }
  });
  var msg = { subject: mode === "put" ? "lti.put_data" : "lti.get_data", message_id: id, key: key };
  if (mode === "put") { msg.value = el.getAttribute("data-value"); }
  try {
    frame.postMessage(msg, origin);
  } catch (e) {
    finish("");
    return;
  }
  window.setTimeout(function () { finish(""); }, 2000);
})();
