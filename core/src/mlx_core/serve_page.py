"""The page ``mlx serve`` shows at ``/`` for a predictor without a page of its own.

Built from the request and response schemas, so every plugin gets a form that fits it: an
image field is a file picker, a text field a text box (a list of strings: one per line), a
number a number box; the answer shows response images as pictures and the rest as text.
One self-contained HTML file: no external script, style or font (it works offline).
"""

from __future__ import annotations

import html
import json
from typing import Any

from .serving import Predictor

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; padding: 0 1rem; }}
 h1 {{ font-size: 1.4rem; margin-bottom: .2rem; }} .sub {{ color: #666; margin-top: 0; }}
 label {{ display: block; margin: .8rem 0 .2rem; font-weight: 600; }} .hint {{ font-weight: 400; color: #777; }}
 textarea, input[type=text], input[type=number] {{ width: 100%; box-sizing: border-box; font: inherit; padding: .3rem; }}
 button {{ margin-top: 1rem; font: inherit; padding: .4rem 1.2rem; }}
 #result {{ margin-top: 1.5rem; }} #result img {{ width: 20rem; max-width: 100%; margin: .3rem; border: 1px solid #ccc; image-rendering: pixelated; }}
 #error {{ color: #b00020; margin-top: 1rem; }} table {{ border-collapse: collapse; }}
 thead td {{ font-weight: 600; color: #555; }} td {{ border-top: 1px solid #eee; padding: .25rem .6rem; vertical-align: top; }} pre {{ margin: 0; white-space: pre-wrap; }}
</style></head><body>
<h1>{title}</h1><p class="sub">{sub} &middot; <a href="/docs">API docs</a> &middot; <a href="/info">info</a></p>
<form id="form">{fields}<button id="submit" type="submit">Predict</button></form>
<div id="error" role="alert"></div><div id="result" data-state="idle"></div>
<script>
const REQUEST = {request}, IMAGES = {images};
const form = document.getElementById("form"), out = document.getElementById("result"), err = document.getElementById("error");
function readBase64(file) {{
  return new Promise((ok, bad) => {{ const r = new FileReader();
    r.onload = () => ok(String(r.result).split(",")[1] || ""); r.onerror = bad; r.readAsDataURL(file); }});
}}
function isImage(s) {{ return s && s["x-mlx-kind"] === "image"; }}
async function body() {{
  const props = REQUEST.properties || {{}}, obj = {{}};
  for (const [name, s] of Object.entries(props)) {{
    const el = form.elements[name]; if (!el) continue;
    if (isImage(s)) {{ if (el.files.length) obj[name] = await readBase64(el.files[0]); continue; }}
    const v = el.value;
    if (s.type === "array") {{ // blank lines dropped; others kept whole (a TSV line's edge tabs are columns)
      const lines = v.split("\\n").map(x => x.replace(/\\r$/, "")).filter(x => x.trim()); if (lines.length) obj[name] = lines; }}
    else if (s.type === "integer" || s.type === "number") {{ if (v !== "") obj[name] = Number(v); }}
    else if (s.type === "boolean") {{ obj[name] = el.checked; }}
    else if (v !== "" || (REQUEST.required || []).includes(name)) obj[name] = v;
  }}
  return obj;
}}
function show(value) {{
  const table = document.createElement("table");
  for (const [k, v] of Object.entries(value)) {{
    const tr = table.insertRow(), key = tr.insertCell(), cell = tr.insertCell(); key.textContent = k;
    if (IMAGES.includes(k) && typeof v === "string") {{
      const img = document.createElement("img"); img.alt = k; img.className = "out-" + k;
      img.src = "data:image/png;base64," + v; cell.appendChild(img);
    }} else if (Array.isArray(v) && v.length && v.every(x => x && typeof x === "object" && !Array.isArray(x))) {{
      const sub = document.createElement("table"), keys = Object.keys(v[0]); sub.className = "out-" + k;
      const head = sub.createTHead().insertRow(); for (const c of keys) head.insertCell().textContent = c;
      for (const row of v) {{ const r = sub.insertRow();
        for (const c of keys) r.insertCell().textContent = typeof row[c] === "string" ? row[c] : JSON.stringify(row[c]); }}
      cell.appendChild(sub); // a list of records (top-k): one row each
    }} else {{ const pre = document.createElement("pre"); pre.className = "out-" + k;
      const flat = Array.isArray(v) && v.every(x => x === null || typeof x !== "object"); // a list of plain values: one a line
      pre.textContent = typeof v === "string" ? v : flat ? v.join("\\n") : JSON.stringify(v, null, 1); cell.appendChild(pre); }}
  }}
  out.replaceChildren(table);
}}
form.addEventListener("submit", async (ev) => {{
  ev.preventDefault(); err.textContent = ""; out.dataset.state = "running";
  try {{
    const r = await fetch("/predict", {{ method: "POST", headers: {{ "content-type": "application/json" }},
                                       body: JSON.stringify(await body()) }});
    const data = await r.json();
    if (!r.ok) {{ err.textContent = data.error || r.statusText; out.dataset.state = "error"; return; }}
    show(data); out.dataset.state = "done";
  }} catch (e) {{ err.textContent = String(e); out.dataset.state = "error"; }}
}});
</script></body></html>
"""


def field_html(name: str, schema: dict[str, Any], required: bool) -> str:
    label = html.escape(schema.get("title") or name)
    hint = html.escape(schema.get("description") or "")
    head = f'<label for="f-{name}">{label} <span class="hint">{hint}</span></label>'
    attrs = f'id="f-{name}" name="{html.escape(name)}"' + (" required" if required else "")
    default = schema.get("default")
    if schema.get("x-mlx-kind") == "image":
        return head + f'<input type="file" accept="image/*" {attrs}>'
    kind = schema.get("type")
    if kind == "array":
        text = "\n".join(map(str, default or []))
        return head + f'<textarea rows="4" {attrs}>{html.escape(text)}</textarea>'
    if kind in ("integer", "number"):
        value = "" if default is None else html.escape(str(default))
        step = "1" if kind == "integer" else "any"
        return head + f'<input type="number" step="{step}" value="{value}" {attrs}>'
    if kind == "boolean":
        return head + f'<input type="checkbox" {attrs}{" checked" if default else ""}>'
    value = "" if default is None else str(default)
    return head + f'<textarea rows="2" {attrs}>{html.escape(value)}</textarea>'


def image_names(model: Any) -> set[str]:
    props = model.model_json_schema().get("properties", {})
    return {k for k, v in props.items() if v.get("x-mlx-kind") == "image"}


def render(predictor: Predictor, plugin: str) -> str:
    schema = predictor.request.model_json_schema()
    required = set(schema.get("required", []))
    fields = "".join(field_html(n, s, n in required) for n, s in schema.get("properties", {}).items())
    return PAGE.format(
        title=html.escape(f"mlx serve: {plugin}"),
        sub=html.escape(predictor.title or "predict with a finished run"),
        fields=fields,
        request=json.dumps(schema).replace("</", "<\\/"),
        images=json.dumps(sorted(image_names(predictor.response))),
    )
