// Dynamic Registration is done: ask the LMS (the window that opened this
// page, or the page framing it) to close the registration window.
(function () {
  var target = window.opener || window.parent;
  if (target && target !== window) {
    target.postMessage({ subject: "org.imsglobal.lti.close" }, "*");
  }
})();
