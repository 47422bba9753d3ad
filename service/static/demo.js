// Product-page demo of the MVCrec API: "You may also like" from GET /items/{id}/similar and
// "Recommended next" from POST /recommend with the products viewed in this tab (sessionStorage).
"use strict";

const SESSION_KEY = "mvcrec-demo-session";
const MAX_SESSION = 50;
let renderToken = 0;

function loadSession() {
  try {
    const items = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "[]");
    return Array.isArray(items) ? items : [];
  } catch {
    return [];
  }
}

function saveSession(items) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(items.slice(-MAX_SESSION)));
}

function recordView(item) {
  const items = loadSession();
  if (items[items.length - 1] !== item) {
    items.push(item);
    saveSession(items);
  }
  return loadSession();
}

// Synthetic catalogue ids look like "cat03-sku004"; anything else is shown as it is.
function describe(item) {
  const match = /^cat(\d+)-sku(\d+)$/.exec(item);
  if (!match) {
    return { title: item, category: "Item", short: "Item", label: item.slice(0, 6),
             hue: hash(item) % 360, shade: 0 };
  }
  const [category, sku] = [Number(match[1]), Number(match[2])];
  return { title: `Product ${match[2]}`, category: `Category ${match[1]}`,
           short: `Cat. ${match[1]}`, label: match[2], hue: (category * 67 + 200) % 360,
           shade: (sku * 7) % 21 - 10 };
}

function hash(text) {
  let value = 0;
  for (const char of text) {
    value = (value * 31 + char.codePointAt(0)) >>> 0;
  }
  return value;
}

function paintTile(tile, item) {
  const { hue, shade, label } = describe(item);
  const [light, dark] = [62 + shade, 42 + shade];
  tile.style.background = `linear-gradient(135deg, hsl(${hue} 65% ${light}%), hsl(${hue + 25} 55% ${dark}%))`;
  tile.textContent = label;
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof payload.detail === "string" ? payload.detail : response.statusText;
    throw new Error(`${response.status}: ${detail}`);
  }
  return payload;
}

function productUrl(item) {
  return `?item=${encodeURIComponent(item)}`;
}

function card(entry) {
  const { title, short } = describe(entry.item);
  const li = document.createElement("li");
  const link = document.createElement("a");
  link.className = "card";
  link.href = productUrl(entry.item);
  link.dataset.item = entry.item;
  const tile = document.createElement("div");
  tile.className = "tile";
  paintTile(tile, entry.item);
  const name = document.createElement("span");
  name.className = "card-title";
  name.textContent = title;
  const meta = document.createElement("span");
  meta.className = "card-meta";
  meta.textContent = `${short} · score ${entry.score.toFixed(2)}`;
  link.append(tile, name, meta);
  li.append(link);
  return li;
}

function fillShelf(section, entries) {
  section.querySelector(".cards").replaceChildren(...entries.map(card));
  section.querySelector(".status").hidden = true;
  section.dataset.state = "ready";
}

function failShelf(section, error) {
  section.querySelector(".cards").replaceChildren();
  const status = section.querySelector(".status");
  status.textContent = `Not available: ${error.message}`;
  status.hidden = false;
  section.dataset.state = "error";
}

function renderSession(items) {
  const chips = document.querySelector("#session .chips");
  chips.replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    li.textContent = item;
    return li;
  }));
}

async function showProduct(item, record) {
  const token = ++renderToken;
  const { title, category } = describe(item);
  document.title = `${title} · MVCrec demo store`;
  document.getElementById("product-title").textContent = title;
  document.getElementById("product-category").textContent = category;
  document.getElementById("product-id").textContent = item;
  paintTile(document.getElementById("product-tile"), item);
  document.getElementById("product").dataset.state = "ready";

  const session = record ? recordView(item) : loadSession();
  renderSession(session);
  const similar = document.getElementById("similar");
  const next = document.getElementById("recommended");
  similar.dataset.state = next.dataset.state = "loading";

  const [similarResult, nextResult] = await Promise.allSettled([
    api(`items/${encodeURIComponent(item)}/similar?k=${similar.dataset.k}`),
    api("recommend", { session, k: Number(next.dataset.k), exclude_seen: true }),
  ]);
  if (token !== renderToken) {
    return; // a newer product was opened meanwhile
  }
  if (similarResult.status === "fulfilled") {
    fillShelf(similar, similarResult.value.items);
  } else {
    failShelf(similar, similarResult.reason);
  }
  const caption = next.querySelector(".caption");
  if (nextResult.status === "fulfilled") {
    const { strategy, model_version: version } = nextResult.value;
    caption.textContent = `Based on the ${session.length} product${session.length === 1 ? "" : "s"}`
      + ` you viewed · ${strategy === "model" ? "MVCrec" : "most popular"} · model ${version}`;
    next.dataset.session = session.join(",");
    fillShelf(next, nextResult.value.items);
    document.getElementById("model-status").textContent = `model ${version}`;
  } else {
    caption.textContent = "";
    failShelf(next, nextResult.reason);
  }
}

function openProduct(item) {
  history.pushState({ item }, "", productUrl(item));
  window.scrollTo(0, 0);
  showProduct(item, true);
}

async function start() {
  document.querySelector("main").addEventListener("click", (event) => {
    const link = event.target.closest("a.card");
    if (link && !event.ctrlKey && !event.metaKey && !event.shiftKey && event.button === 0) {
      event.preventDefault();
      openProduct(link.dataset.item);
    }
  });
  document.getElementById("clear-session").addEventListener("click", () => {
    sessionStorage.removeItem(SESSION_KEY);
    showProduct(document.getElementById("product-id").textContent, true);
  });
  window.addEventListener("popstate", (event) => {
    if (event.state && event.state.item) {
      showProduct(event.state.item, false);
    }
  });

  let item = new URLSearchParams(location.search).get("item");
  if (!item) {
    try {
      // No product named: open the most popular one (an empty session gets the popularity list).
      item = (await api("recommend", { session: [], k: 1 })).items[0].item;
    } catch (error) {
      document.getElementById("product-title").textContent = `Service not ready (${error.message})`;
      document.getElementById("product").dataset.state = "error";
      return;
    }
  }
  history.replaceState({ item }, "", productUrl(item));
  showProduct(item, true);
}

start();
