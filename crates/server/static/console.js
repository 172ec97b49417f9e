// Progressive enhancement only: every page works without this file.
"use strict";

document.querySelectorAll("[data-copy]").forEach((button) => {
  button.hidden = false;
  button.addEventListener("click", async () => {
    const text = document.getElementById(button.dataset.copy).textContent.trim();
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Select and copy";
    }
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
});

document.querySelectorAll("[data-expires-in]").forEach((el) => {
  const end = Date.now() + Number(el.dataset.expiresIn) * 1000;
  const tick = () => {
    const left = Math.max(0, Math.round((end - Date.now()) / 1000));
    el.textContent = left > 0
      ? `Expires in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`
      : "Expired";
    if (left > 0) setTimeout(tick, 1000);
  };
  tick();
});

document.querySelectorAll("[data-rows]").forEach((fieldset) => {
  const add = fieldset.querySelector("[data-add-row]");
  const wire = (row) => {
    const remove = row.querySelector("[data-remove-row]");
    remove.hidden = false;
    remove.addEventListener("click", () => {
      if (fieldset.querySelectorAll(".row").length > 1) row.remove();
      else row.querySelector("input").value = "";
    });
  };
  fieldset.querySelectorAll(".row").forEach(wire);
  add.hidden = false;
  add.addEventListener("click", () => {
    const rows = fieldset.querySelectorAll(".row");
    const copy = rows[rows.length - 1].cloneNode(true);
    const input = copy.querySelector("input");
    const n = rows.length + 1;
    input.value = "";
    input.id = `redirect_uri_${n}`;
    copy.querySelector("label").htmlFor = input.id;
    copy.querySelector("label").textContent = `Redirect URI ${n}`;
    add.before(copy);
    wire(copy);
    input.focus();
  });
});
