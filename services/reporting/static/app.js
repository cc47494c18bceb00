// The progress page: signs a staff member in with identity, then shows reporting's figures
// for their scope. Plain module, no build step; text is set with textContent only.
const API = "/api";
const TOKEN_KEY = "hocvu.reporting.token";
const SVG = "http://www.w3.org/2000/svg";
const $ = (selector) => document.querySelector(selector);
const number = new Intl.NumberFormat("vi-VN");
const percent = new Intl.NumberFormat("vi-VN", { style: "percent", maximumFractionDigits: 1 });
const ROLES = { province_admin: "quản trị tỉnh", commune_admin: "quản trị xã",
                facilitator: "tổ công nghệ số cộng đồng" };

let rows = [];
let sort = { key: "enrolled", descending: true };

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function claims(jwt) {
  const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

async function api(path, params) {
  const query = params ? "?" + new URLSearchParams(params) : "";
  const answer = await fetch(`${API}/reporting/${path}${query}`,
                             { headers: { Authorization: `Bearer ${token()}` } });
  if (answer.status === 401) { signOut(); throw new Error("Phiên đăng nhập đã hết, hãy đăng nhập lại."); }
  if (!answer.ok) {
    const body = await answer.json().catch(() => ({}));
    throw new Error(body.message || `Lỗi ${answer.status}`);
  }
  return answer;
}

function filters() {
  const form = new FormData($("#filters"));
  return Object.fromEntries([...form.entries()].filter(([, value]) => value));
}

async function load() {
  $("#report-error").textContent = "";
  try {
    const params = filters();
    const [communes, days] = await Promise.all([
      api("communes", params).then((r) => r.json()), api("days", params).then((r) => r.json())]);
    rows = communes.items;
    showTotals(communes.totals);
    showTable();
    drawTrend(days.items);
    drawBars();
    document.body.dataset.loaded = String(Date.now());
  } catch (error) {
    $("#report-error").textContent = error.message;
  }
}

function showTotals(totals) {
  const certified = Math.max(0, totals.certificates_issued - totals.certificates_revoked);
  $("#total-enrolled").textContent = number.format(totals.enrolled);
  $("#total-completed").textContent = number.format(totals.courses_completed);
  $("#total-certified").textContent = number.format(certified);
  $("#total-active").textContent = number.format(totals.active);
}

function visibleRows() {
  const all = $("#show-empty").checked;
  const shown = rows.filter((row) => all || row.enrolled > 0);
  const { key, descending } = sort;
  return shown.sort((a, b) => {
    const x = a[key] ?? -1, y = b[key] ?? -1;
    const order = typeof x === "string" ? x.localeCompare(y, "vi") : x - y;
    return descending ? -order : order;
  });
}

function cell(tr, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  tr.appendChild(td);
  return td;
}

function showTable() {
  const body = $("#communes tbody");
  body.replaceChildren();
  for (const row of visibleRows()) {
    const tr = document.createElement("tr");
    tr.dataset.commune = row.commune_code;
    cell(tr, row.commune_name || row.commune_code);
    cell(tr, number.format(row.enrolled), "num enrolled");
    cell(tr, number.format(row.courses_completed), "num completed");
    cell(tr, number.format(row.certified), "num certified");
    const rate = row.certification_rate === null ? "–"
      : percent.format(row.certification_rate) + (row.rate_basis === "enrolled" ? " *" : "");
    cell(tr, rate, "num rate " + (row.target_met ? "met" : "unmet"));
    cell(tr, percent.format(row.target_rate), "num");
    body.appendChild(tr);
  }
  for (const th of document.querySelectorAll("#communes th")) {
    th.setAttribute("aria-sort", th.dataset.sort === sort.key
      ? (sort.descending ? "descending" : "ascending") : "none");
  }
}

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

function drawTrend(days) {
  const svg = $("#trend");
  const width = Math.max(320, svg.clientWidth || 600), height = 220, pad = 34;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  if (!days.length) {
    svg.appendChild(svgElement("text", { x: pad, y: height / 2 }, "Chưa có số liệu trong khoảng này"));
    return;
  }
  const series = [["enrolled", "#0a6ebd"], ["courses_completed", "#f2a900"],
                  ["certificates_issued", "#1a7f37"]];
  const top = Math.max(1, ...days.flatMap((d) => series.map(([key]) => d[key])));
  const x = (i) => pad + (days.length === 1 ? (width - 2 * pad) / 2 : i * (width - 2 * pad) / (days.length - 1));
  const y = (v) => height - pad - v * (height - 2 * pad) / top;
  svg.appendChild(svgElement("line", { x1: pad, y1: y(0), x2: width - pad, y2: y(0), stroke: "#d8dee6" }));
  svg.appendChild(svgElement("text", { x: 2, y: y(top) + 4 }, number.format(top)));
  svg.appendChild(svgElement("text", { x: 2, y: y(0) + 4 }, "0"));
  svg.appendChild(svgElement("text", { x: pad, y: height - 8 }, days[0].day));
  svg.appendChild(svgElement("text", { x: width - pad, y: height - 8, "text-anchor": "end" },
                             days[days.length - 1].day));
  for (const [key, colour] of series) {
    const points = days.map((d, i) => `${x(i)},${y(d[key])}`).join(" ");
    // certificates follow completions within seconds: dashed, so the two lines stay visible
    svg.appendChild(svgElement("polyline", { points, fill: "none", stroke: colour, "stroke-width": 2,
      ...(key === "certificates_issued" ? { "stroke-dasharray": "6 4" } : {}) }));
    days.forEach((d, i) => svg.appendChild(svgElement("circle", {
      cx: x(i), cy: y(d[key]), r: 2.5, fill: colour, "data-day": d.day, "data-series": key })));
  }
}

function drawBars() {
  const svg = $("#bars");
  const shown = visibleRows().filter((row) => row.certification_rate !== null);
  const barHeight = 22, label = 150, width = Math.max(320, svg.clientWidth || 600);
  const height = Math.max(40, shown.length * barHeight + 20);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("height", height);
  svg.replaceChildren();
  const scale = (rate) => label + rate * (width - label - 50);
  shown.forEach((row, i) => {
    const top = 10 + i * barHeight;
    svg.appendChild(svgElement("text", { x: 4, y: top + 14 }, row.commune_name || row.commune_code));
    svg.appendChild(svgElement("rect", { x: label, y: top + 3, height: barHeight - 8,
      width: Math.max(1, scale(Math.min(1, row.certification_rate)) - label),
      fill: row.target_met ? "#1a7f37" : "#0a6ebd", "data-commune": row.commune_code }));
    svg.appendChild(svgElement("line", { x1: scale(row.target_rate), x2: scale(row.target_rate),
      y1: top, y2: top + barHeight - 2, stroke: "#c62828", "stroke-width": 2 }));
    svg.appendChild(svgElement("text", { x: scale(Math.min(1, row.certification_rate)) + 4, y: top + 14 },
                               percent.format(row.certification_rate)));
  });
}

async function exportCsv() {
  try {
    const answer = await api("export.csv", filters());
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await answer.blob());
    link.download = "hocvu-tien-do.csv";
    link.click();
    URL.revokeObjectURL(link.href);
  } catch (error) {
    $("#report-error").textContent = error.message;
  }
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  show();
}

function show() {
  const jwt = token();
  let who = null;
  try { who = jwt && claims(jwt); } catch { who = null; }
  const staff = who && who.exp * 1000 > Date.now() && ROLES[who.role];
  $("#sign-in").hidden = Boolean(staff);
  $("#report").hidden = !staff;
  $("#sign-out").hidden = !staff;
  $("#who").textContent = staff
    ? `${ROLES[who.role]}: ${who.role === "province_admin" ? "tỉnh " + who.province
                                                           : (who.communes || []).length + " xã"}`
    : "";
  if (jwt && !staff) sessionStorage.removeItem(TOKEN_KEY);
  if (staff) load();
}

$("#sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  $("#sign-in-error").textContent = "";
  const answer = await fetch(`${API}/identity/staff/sign-in`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: form.get("username"), password: form.get("password") }) });
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) {
    $("#sign-in-error").textContent = answer.status === 401
      ? "Sai tên đăng nhập hoặc mật khẩu." : body.message || `Lỗi ${answer.status}`;
    return;
  }
  if (!ROLES[claims(body.access_token).role]) {
    $("#sign-in-error").textContent = "Trang này dành cho cán bộ quản lý.";
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, body.access_token);
  event.target.reset();
  show();
});
$("#filters").addEventListener("submit", (event) => { event.preventDefault(); load(); });
$("#export").addEventListener("click", exportCsv);
$("#sign-out").addEventListener("click", signOut);
$("#show-empty").addEventListener("change", () => { showTable(); drawBars(); });
for (const th of document.querySelectorAll("#communes th")) {
  th.addEventListener("click", () => {
    sort = { key: th.dataset.sort, descending: sort.key === th.dataset.sort ? !sort.descending : true };
    showTable();
  });
}
show();
