//! `/api/openapi.json` and `/api/docs`: the document, and a reference page
//! rendered on the server from that same document (plain HTML and CSS, no
//! scripts, nothing loaded from elsewhere).

use std::fmt::Write;
use std::sync::OnceLock;

use actix_web::HttpResponse;
use serde_json::Value;

fn doc() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(super::openapi::document)
}

pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .json(doc())
}

pub async fn reference_page() -> HttpResponse {
    static PAGE: OnceLock<String> = OnceLock::new();
    let page = PAGE.get_or_init(|| render(doc()));
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'",
        ))
        .body(page.clone())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline code spans (`x`) and paragraphs from the descriptions' Markdown subset.
fn prose(s: &str) -> String {
    let mut out = String::new();
    for para in s.split("\n\n") {
        let mut html = String::new();
        for (i, part) in esc(para).split('`').enumerate() {
            if i % 2 == 1 {
                let _ = write!(html, "<code>{part}</code>");
            } else {
                html.push_str(part);
            }
        }
        let _ = write!(out, "<p>{html}</p>");
    }
    out
}

fn ref_name(v: &Value) -> Option<&str> {
    v.get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
}

/// A short type description with links to component schemas.
fn type_of(v: &Value) -> String {
    if let Some(n) = ref_name(v) {
        return format!("<a href=\"#schema-{0}\">{0}</a>", esc(n));
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(list) = v.get(key).and_then(Value::as_array) {
            return list.iter().map(type_of).collect::<Vec<_>>().join(" | ");
        }
    }
    let types: Vec<String> = match v.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    };
    let mut parts = Vec::new();
    for t in types {
        if t == "array" {
            let item = v.get("items").map(type_of).unwrap_or_else(|| "any".into());
            parts.push(format!("array of {item}"));
        } else {
            let fmt = v
                .get("format")
                .and_then(Value::as_str)
                .map(|f| format!(" ({})", esc(f)))
                .unwrap_or_default();
            parts.push(format!("{}{fmt}", esc(&t)));
        }
    }
    if let Some(e) = v.get("enum").and_then(Value::as_array) {
        let vals: Vec<String> = e
            .iter()
            .map(|x| format!("<code>{}</code>", esc(&x.to_string())))
            .collect();
        parts.push(format!("one of {}", vals.join(", ")));
    }
    if parts.is_empty() {
        "any".into()
    } else {
        parts.join(" or ")
    }
}

fn properties_table(schema: &Value) -> String {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return format!("<p>Type: {}</p>", type_of(schema));
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut s = String::from(
        "<table><tr><th>Field</th><th>Type</th><th>Required</th><th>Description</th></tr>",
    );
    for (name, p) in props {
        let desc = p
            .get("description")
            .and_then(Value::as_str)
            .map(prose)
            .unwrap_or_default();
        let _ = write!(
            s,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            type_of(p),
            if required.contains(&name.as_str()) {
                "yes"
            } else {
                ""
            },
            desc
        );
    }
    s.push_str("</table>");
    s
}

/// Renders the whole reference page.
pub fn render(doc: &Value) -> String {
    let info = &doc["info"];
    let title = info["title"].as_str().unwrap_or("API");
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>{} <small>v{}</small></h1>{}<p>Machine-readable: <a href=\"/api/openapi.json\">/api/openapi.json</a> (OpenAPI {}).</p>",
        esc(title),
        esc(info["version"].as_str().unwrap_or("")),
        prose(info["description"].as_str().unwrap_or("")),
        esc(doc["openapi"].as_str().unwrap_or(""))
    );
    let mut toc = String::from("<nav><h2>Endpoints</h2><ul>");
    let mut ops = String::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in ["get", "post", "put", "patch", "delete"] {
                let Some(op) = item.get(method) else { continue };
                let anchor = format!("{method}-{}", path.replace(['/', '{', '}'], "_"));
                let summary = op["summary"].as_str().unwrap_or("");
                let _ = write!(
                    toc,
                    "<li><a href=\"#{anchor}\"><span class=\"m {method}\">{}</span> {}</a></li>",
                    method.to_uppercase(),
                    esc(path)
                );
                let _ = write!(
                    ops,
                    "<section id=\"{anchor}\"><h3><span class=\"m {method}\">{}</span> <code>{}</code></h3><p class=\"sum\">{}</p>",
                    method.to_uppercase(),
                    esc(path),
                    esc(summary)
                );
                if let Some(d) = op["description"].as_str() {
                    ops.push_str(&prose(d));
                }
                let scopes: Vec<String> = op["security"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.get("api_key").and_then(Value::as_array))
                    .flatten()
                    .filter_map(|s| s.as_str().map(|s| format!("<code>{}</code>", esc(s))))
                    .collect();
                if !scopes.is_empty() {
                    let _ = write!(ops, "<p>API key scope: {}</p>", scopes.join(", "));
                }
                if let Some(params) = op["parameters"].as_array() {
                    ops.push_str("<h4>Parameters</h4><table><tr><th>Name</th><th>In</th><th>Type</th><th>Required</th><th>Description</th></tr>");
                    for p in params {
                        let _ = write!(
                            ops,
                            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            esc(p["name"].as_str().unwrap_or("")),
                            esc(p["in"].as_str().unwrap_or("")),
                            type_of(&p["schema"]),
                            if p["required"].as_bool().unwrap_or(false) { "yes" } else { "" },
                            esc(p["description"].as_str().unwrap_or(""))
                        );
                    }
                    ops.push_str("</table>");
                }
                if let Some(content) = op["requestBody"]["content"].as_object() {
                    ops.push_str("<h4>Request body</h4>");
                    for (ct, c) in content {
                        let _ = write!(
                            ops,
                            "<p><code>{}</code>: {}</p>",
                            esc(ct),
                            type_of(&c["schema"])
                        );
                    }
                }
                if let Some(resps) = op["responses"].as_object() {
                    ops.push_str("<h4>Responses</h4><table><tr><th>Status</th><th>Description</th><th>Body</th></tr>");
                    for (status, r) in resps {
                        let bodies: Vec<String> = r["content"]
                            .as_object()
                            .map(|c| {
                                c.iter()
                                    .map(|(ct, v)| {
                                        format!(
                                            "{} <small>{}</small>",
                                            type_of(&v["schema"]),
                                            esc(ct)
                                        )
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        let _ = write!(
                            ops,
                            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                            esc(status),
                            esc(r["description"].as_str().unwrap_or("")),
                            bodies.join("<br>")
                        );
                    }
                    ops.push_str("</table>");
                }
                ops.push_str("</section>");
            }
        }
    }
    toc.push_str("</ul><h2>Schemas</h2><ul>");
    let mut schemas = String::new();
    if let Some(map) = doc["components"]["schemas"].as_object() {
        for (name, s) in map {
            let _ = write!(toc, "<li><a href=\"#schema-{0}\">{0}</a></li>", esc(name));
            let _ = write!(
                schemas,
                "<section id=\"schema-{0}\"><h3>{0}</h3>",
                esc(name)
            );
            if let Some(d) = s["description"].as_str() {
                schemas.push_str(&prose(d));
            }
            schemas.push_str(&properties_table(s));
            schemas.push_str("</section>");
        }
    }
    toc.push_str("</ul></nav>");
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} reference</title><style>{CSS}</style></head><body>{toc}<main>{body}<h2>Endpoints</h2>{ops}<h2>Schemas</h2>{schemas}</main></body></html>",
        esc(title)
    )
}

const CSS: &str = "body{margin:0;display:flex;font:15px/1.5 system-ui,sans-serif;color:#1d2330}nav{width:18rem;flex:none;height:100vh;overflow:auto;position:sticky;top:0;background:#f4f5f8;padding:1rem;box-sizing:border-box;font-size:13px}nav ul{list-style:none;padding:0}nav a{text-decoration:none;color:inherit}main{padding:1rem 2rem;max-width:60rem}section{border-top:1px solid #dde;padding:.5rem 0}table{border-collapse:collapse;width:100%;font-size:14px}td,th{border:1px solid #dde;padding:.25rem .5rem;text-align:left;vertical-align:top}td p{margin:0}code{background:#f0f1f5;padding:0 .2rem;border-radius:3px}.m{display:inline-block;min-width:3.5rem;font-weight:600;font-size:12px;text-align:center;border-radius:3px;color:#fff}.get{background:#2b6cb0}.post{background:#2f855a}.delete{background:#c53030}.put,.patch{background:#b7791f}.sum{font-weight:600}";
