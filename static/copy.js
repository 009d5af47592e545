// The copy button of the page that shows a new secret once. Same-origin, no inline script.
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  button.addEventListener("click", function () {
    var field = document.getElementById(button.getAttribute("data-copy"));
    field.select();
    var done = function () { var n = document.getElementById("copied"); if (n) { n.hidden = false; } };
    if (navigator.clipboard) { navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); }); }
    else { document.execCommand("copy"); done(); }
  });
});
// Read-only fields that hold something to copy (a key, an id) select all on focus.
document.querySelectorAll("input[readonly]").forEach(function (field) {
  field.addEventListener("focus", function () { field.select(); });
});
