// Ctrl+Enter (Cmd+Enter on a Mac) in the Extract text runs the extraction.
// requestSubmit() fires the form's submit event, so htmx sends it as a click on
// Extract would (form.submit() would skip htmx and reload the page). Listening on
// the document keeps working after htmx swaps the panel in.
(function () {
  "use strict";

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) { return; }
    if (event.repeat || event.isComposing) { return; }
    var field = event.target;
    if (!(field instanceof HTMLTextAreaElement) || !field.form || field.form.id !== "extract-form") {
      return;
    }
    event.preventDefault();
    field.form.requestSubmit();
  });
})();
