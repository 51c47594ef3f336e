"""A self-contained HTML page on which an editor accepts, rejects or replaces each suggested change.

``degarble restore IN --format html -o review.html`` writes it: open it in any browser, offline
(no file is fetched). Every record is one section; each change sits in the text as a menu (the
suggestion, its alternatives, and the original wording), words the detector flagged but nothing
was suggested for are marked, and the text with the choices made is shown below it, ready to copy. The data of each record is embedded as JSON
(:func:`degarble.edits.choice_segments`) and drawn with ``textContent``, so nothing in the input
can inject markup.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from .edits import choice_segments
from .types import Edit

HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="degarble">
<title>degarble: suggested changes</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 58rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
section { border-top: 1px solid #ccc; padding: 1rem 0; }
.text { white-space: pre-wrap; }
select { font: inherit; border: 1px solid #999; border-radius: 4px; padding: 0 2px; }
select.changed { background: #e3f5e1; border-color: #3a8a32; }
select.kept { background: #f1f1f1; color: #555; }
mark { background: #fff1b8; }
textarea { width: 100%; min-height: 8rem; font: inherit; margin-top: .5rem; }
.tools button { margin-right: .5rem; }
.meta { color: #666; font-size: .9em; }
</style>
<script>
"use strict";
// segments: untouched text (strings), flagged words with no suggestion ({flag, score}) and changes
// ({original, options}); choices[i] is the option picked for change i: 0 the suggestion, 1.. its
// alternatives, -1 the original
function isChange(s) { return typeof s !== "string" && !("flag" in s); }
function joined(segments, choices) {
  let k = 0;
  return segments.map(s => typeof s === "string" ? s : "flag" in s ? s.flag
    : (c => c < 0 ? s.original : s.options[c].text)(choices[k++])).join("");
}
function label(o) { return o.score === null ? o.text : o.text + " (" + o.score.toFixed(2) + ")"; }
function draw(data) {
  const section = document.createElement("section");
  const h = document.createElement("h2");
  h.textContent = data.header;
  section.append(h);
  const changes = data.segments.filter(isChange);
  const choices = changes.map(() => 0);
  const meta = document.createElement("p");
  meta.className = "meta";
  meta.textContent = changes.length + " suggested change" + (changes.length === 1 ? "" : "s") +
    ": pick the wording for each (suggestion first, then alternatives, then the original).";
  section.append(meta);
  const text = document.createElement("div");
  text.className = "text";
  const out = document.createElement("textarea");
  out.readOnly = true;
  const menus = [];
  function update() {
    menus.forEach((m, i) => { m.value = String(choices[i]); m.className = choices[i] < 0 ? "kept" : "changed"; });
    out.value = joined(data.segments, choices);
  }
  let k = 0;
  for (const s of data.segments) {
    if (typeof s === "string") { text.append(document.createTextNode(s)); continue; }
    if ("flag" in s) {
      const mark = document.createElement("mark");
      mark.textContent = s.flag;
      mark.title = "flagged (" + s.score.toFixed(2) + "), no confident suggestion: check it";
      text.append(mark);
      continue;
    }
    const i = k++;
    const menu = document.createElement("select");
    menu.title = "was: " + s.original;
    s.options.forEach((o, j) => menu.append(new Option(label(o), String(j))));
    menu.append(new Option(s.original + " (original)", "-1"));
    menu.addEventListener("change", () => { choices[i] = Number(menu.value); update(); });
    menus.push(menu);
    text.append(menu);
  }
  section.append(text);
  const tools = document.createElement("div");
  tools.className = "tools";
  for (const [name, value] of [["Accept all", 0], ["Reject all", -1]]) {
    const b = document.createElement("button");
    b.textContent = name;
    b.addEventListener("click", () => { choices.fill(value); update(); });
    tools.append(b);
  }
  const copy = document.createElement("button");
  copy.textContent = "Copy the text";
  copy.addEventListener("click", () => { out.select(); navigator.clipboard?.writeText(out.value); });
  tools.append(copy);
  section.append(tools, out);
  update();
  document.body.append(section);
}
document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("script.degarble-record")) draw(JSON.parse(el.textContent));
});
</script>
</head><body>
<h1>degarble: suggested changes</h1>
<p class="meta">Every change is a menu in the text; <mark>marked</mark> words are ones the detector doubts
but has no confident suggestion for. The box under each text holds it with the choices made; copy it
from there.</p>
"""


def record_block(header: str, text: str, edits: Iterable[Edit], flagged: Iterable = ()) -> str:
    """One record as the page's embedded JSON (``header``, the text's :func:`choice_segments`,
    with the ``flagged`` spans no edit covers marked)."""
    data = json.dumps({"header": header, "segments": choice_segments(text, edits, flagged)}, ensure_ascii=False)
    # inside <script>, "</script" or "<!--" in the text could end or confuse the element: every
    # "<" is written as the JSON escape \u003c, which JSON.parse reads back as "<"
    data = data.replace("<", "\\u003c")
    return f'<script type="application/json" class="degarble-record">{data}</script>\n'
