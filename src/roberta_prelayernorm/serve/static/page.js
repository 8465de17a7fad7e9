// The page at /: asks /info what the model does, shows the fields its task needs, and draws the answer:
// label scores as bars, entities marked in the text, the answer marked in its context, fill-mask candidates ranked.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;

function headers() {
  const h = { "Content-Type": "application/json" };
  if ($("key").value) h.Authorization = "Bearer " + $("key").value;
  return h;
}

async function call(method, path, body) {
  const response = await fetch(path, { method, headers: headers(), body: body && JSON.stringify(body) });
  const data = await response.json();
  if (!response.ok) throw Object.assign(new Error(data.error || response.statusText), { status: response.status });
  return data;
}

function element(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
}

// The text with the spans [start, end) marked, each with its tag.
function marked(text, spans) {
  const out = element("div", { className: "text" });
  let at = 0;
  for (const span of [...spans].sort((a, b) => a.start - b.start)) {
    if (span.start < at) continue;
    out.append(text.slice(at, span.start));
    out.append(element("mark", { title: span.title }, [text.slice(span.start, span.end), element("small", { textContent: span.tag })]));
    at = span.end;
  }
  out.append(text.slice(at));
  return out;
}

function bars(rows) {
  return element("div", { id: "bars" }, rows.map((row) => element("div", { className: "bar-row" }, [
    element("span", { className: "label", textContent: row.label }),
    element("div", { className: "bar", style: `width: ${Math.max(0, Math.min(1, row.score)) * 100}%` }),
    element("span", { textContent: row.score.toFixed(3) }),
  ])));
}

const TASKS = {
  "text-classification": {
    route: "/predict", label: "Text",
    body: () => ({ inputs: $("text").value }),
    draw: (result) => bars(result),
  },
  "token-classification": {
    route: "/tag", label: "Text",
    body: () => ({ inputs: $("text").value, aggregation_strategy: "simple" }),
    draw: (entities) => entities.length ? marked($("text").value, entities.map((e) => ({
      start: e.start, end: e.end, tag: e.entity_group || e.entity, title: e.score.toFixed(3) })))
      : element("p", { textContent: "no entities found" }),
  },
  "question-answering": {
    route: "/answer", label: "Question", context: true,
    body: () => ({ inputs: { question: $("text").value, context: $("context").value } }),
    draw: (a) => element("div", {}, [
      element("p", { id: "answer", textContent: `${a.answer} (score ${a.score.toFixed(3)})` }),
      marked($("context").value, [{ start: a.start, end: a.end, tag: "answer", title: a.score.toFixed(3) }])]),
  },
  "multiple-choice": {
    route: "/choose", label: "Prompt", choices: true,
    body: () => ({ inputs: { prompt: $("text").value, choices: $("choices").value.split("\n").filter((c) => c.trim()) } }),
    draw: (ranked) => bars(ranked.map((c) => ({ label: c.choice, score: c.score }))),
  },
  "fill-mask": {
    route: "/fill-mask", label: "Text with <mask>",
    body: () => ({ inputs: $("text").value }),
    draw: (result) => {
      const lists = Array.isArray(result[0]) ? result : [result];
      return element("div", {}, lists.map((candidates) => element("ol", {}, candidates.map((c) =>
        element("li", { textContent: `${c.token_str.trim()} — ${c.score.toFixed(3)} — ${c.sequence}` })))));
    },
  },
  null: {  // a model without a task head: its tokens
    route: "/tokenize", label: "Text",
    body: () => ({ inputs: $("text").value }),
    draw: (result) => element("p", { className: "text", textContent: result[0].map((t) => t.token).join(" · ") }),
  },
};

async function load() {
  try {
    info = await call("GET", "/info");
  } catch (err) {
    if (err.status === 401) {
      $("key-field").classList.remove("hidden");
      $("about").textContent = "This server needs its API key: enter it and submit.";
      return;
    }
    $("about").textContent = "cannot reach the server: " + err.message;
    return;
  }
  const task = TASKS[info.task];
  $("about").textContent = `${info.task || "embedding"} model ${info.model} (${info.precision}, ${info.device})`;
  $("text-label").textContent = task.label;
  $("context-field").classList.toggle("hidden", !task.context);
  $("choices-field").classList.toggle("hidden", !task.choices);
  if (info.task === "fill-mask") $("text").placeholder = `The capital of France is ${info.mask_token}.`;
}

$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("error").textContent = "";
  $("result").replaceChildren();
  if (!info) await load();
  if (!info) return;
  const task = TASKS[info.task];
  try {
    const result = await call("POST", task.route, task.body());
    $("result").replaceChildren(task.draw(result));
  } catch (err) {
    $("error").textContent = err.message;
  }
});

load();
