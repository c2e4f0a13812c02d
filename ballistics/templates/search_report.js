/* The correlation list: a candidate's button shows its pair view (mounted on first opening) and hides the others. */
(function () {
  "use strict";
  var list = document.querySelector("table.sr-list");
  function show(id) {
    Array.prototype.forEach.call(document.querySelectorAll(".sr-pair"), function (box) {
      box.hidden = box.id !== id + "-box";
    });
    var box = document.getElementById(id + "-box");
    window.BallisticsPairView.mount(document.getElementById(id));
    box.scrollIntoView();
  }
  Array.prototype.forEach.call(document.querySelectorAll("button.sr-open"), function (button) {
    button.addEventListener("click", function () { show(button.getAttribute("data-target")); });
  });
  Array.prototype.forEach.call(document.querySelectorAll("button.sr-back"), function (button) {
    button.addEventListener("click", function () {
      button.closest(".sr-pair").hidden = true;
      list.scrollIntoView();
    });
  });
})();
