// Sortable tables and the compare page's noise filter. No dependencies, no network.
"use strict";

function cellValue(row, index, numeric) {
  const cell = row.cells[index];
  if (!cell) return null;
  if (numeric) {
    const raw = cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent;
    const value = parseFloat(raw);
    return Number.isNaN(value) ? null : value;
  }
  const text = cell.textContent.trim();
  return text === "" || text === "—" ? null : text.toLowerCase();
}

function sortTable(table, th) {
  const index = th.cellIndex;
  const numeric = th.dataset.sort === "num";
  const current = th.getAttribute("aria-sort");
  // first click: best first where the column has a direction, else ascending
  let ascending = th.dataset.better === "high" ? false : true;
  if (current === "ascending") ascending = false;
  else if (current === "descending") ascending = true;
  for (const other of th.parentElement.cells) other.removeAttribute("aria-sort");
  th.setAttribute("aria-sort", ascending ? "ascending" : "descending");

  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const ranked = rows.filter((r) => !r.classList.contains("bad"));
  const unranked = rows.filter((r) => r.classList.contains("bad")); // failed rows stay below, in their order
  ranked.sort((a, b) => {
    const va = cellValue(a, index, numeric);
    const vb = cellValue(b, index, numeric);
    if (va === null && vb === null) return 0;
    if (va === null) return 1; // missing values last in both directions
    if (vb === null) return -1;
    const order = numeric ? va - vb : va.localeCompare(vb, undefined, { numeric: true });
    return ascending ? order : -order;
  });
  for (const row of [...ranked, ...unranked]) body.appendChild(row);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll("table.sortable")) {
    for (const th of table.tHead.rows[0].cells) {
      if (!th.dataset.sort) continue;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      button.title = "sort by this column";
      while (th.firstChild) button.appendChild(th.firstChild);
      th.appendChild(button);
      button.addEventListener("click", () => sortTable(table, th));
    }
  }
  const hide = document.getElementById("hide-noise");
  if (hide) {
    hide.addEventListener("change", () => {
      document.getElementById("compare").classList.toggle("hide-noise", hide.checked);
    });
  }
});
