// The hosted chat page (/chat/<public token>): open the widget as soon as it has loaded.
// widget.js replays commands queued before it booted (see "the command queue" in widget.js).
window.frontdesk =
  window.frontdesk ||
  function () {
    (window.frontdesk.q = window.frontdesk.q || []).push(arguments);
  };
window.frontdesk("open");
