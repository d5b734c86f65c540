//! The API's human-readable reference: an HTML page rendered on the server
//! from the same OpenAPI document `/api/v1/openapi.json` serves, so the two
//! never disagree. No script and nothing fetched from the internet.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

const STYLE: &str = "
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1b1f24;background:#fff}
main{max-width:72rem;margin:0 auto;padding:1.5rem}
nav{columns:2;margin-bottom:2rem}
h1{margin-top:0}h2{border-bottom:2px solid #d0d7de;padding-bottom:.25rem;margin-top:2.5rem}
section.op{border:1px solid #d0d7de;border-radius:6px;padding:.75rem 1rem;margin:1rem 0}
.method{display:inline-block;min-width:4.5rem;font-weight:700;text-transform:uppercase}
.get{color:#0550ae}.post{color:#116329}.delete{color:#a40e26}.put,.patch{color:#8a4600}
code{font:13px ui-monospace,monospace;background:#f6f8fa;padding:.1rem .3rem;border-radius:4px}
table{border-collapse:collapse;margin:.5rem 0;width:100%}
th,td{text-align:left;border-bottom:1px solid #d0d7de;padding:.3rem .5rem;vertical-align:top}
th{background:#f6f8fa}
a{color:#0550ae}
";

/// The reference page for an OpenAPI document (as JSON).
pub fn page(api: &Value) -> String {
    let tags: Vec<(String, String)> = api["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| {
                    (
                        t["name"].as_str().unwrap_or_default().to_owned(),
                        t["description"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut ops: Vec<(String, String, String, &Value)> = Vec::new();
    if let Some(paths) = api["paths"].as_object() {
        for (path, item) in paths {
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    let tag = op["tags"][0].as_str().unwrap_or("other").to_owned();
                    ops.push((tag, path.clone(), method.to_owned(), op));
                }
            }
        }
    }
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Keel API reference" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main {
                    h1 { (api["info"]["title"].as_str().unwrap_or("Keel")) " API reference" }
                    p { (api["info"]["description"].as_str().unwrap_or_default()) }
                    p { "Machine-readable: " a href="/api/v1/openapi.json" { "/api/v1/openapi.json" } " (OpenAPI "
                        (api["openapi"].as_str().unwrap_or_default()) ")." }
                    nav aria-label="Operations" {
                        @for (tag, description) in &tags {
                            div { a href={ "#" (tag) } { (tag) } " — " (description) }
                        }
                        div { a href="#schemas" { "schemas" } " — the objects requests and answers carry" }
                    }
                    @for (tag, description) in &tags {
                        h2 id=(tag) { (tag) }
                        p { (description) }
                        @for (_, path, method, op) in ops.iter().filter(|o| &o.0 == tag) {
                            (operation(path, method, op))
                        }
                    }
                    h2 id="schemas" { "Schemas" }
                    @if let Some(schemas) = api["components"]["schemas"].as_object() {
                        @for (name, schema) in schemas {
                            (schema_section(name, schema))
                        }
                    }
                }
            }
        }
    };
    markup.into_string()
}

fn operation(path: &str, method: &str, op: &Value) -> Markup {
    let anchor = format!("{method}-{}", path.replace(['/', '{', '}'], "-"));
    html! {
        section.op id=(anchor) {
            h3 { span class={ "method " (method) } { (method) } code { (path) } }
            @if let Some(d) = op["description"].as_str().or(op["summary"].as_str()) {
                p { (d) }
            }
            @if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
                table {
                    caption.visually-hidden { "Parameters" }
                    thead { tr { th scope="col" { "Parameter" } th scope="col" { "In" } th scope="col" { "Type" } th scope="col" { "Required" } th scope="col" { "Description" } } }
                    tbody {
                        @for p in params {
                            tr {
                                td { code { (p["name"].as_str().unwrap_or_default()) } }
                                td { (p["in"].as_str().unwrap_or_default()) }
                                td { (type_of(&p["schema"])) }
                                td { @if p["required"].as_bool() == Some(true) { "yes" } @else { "no" } }
                                td { (p["description"].as_str().unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
            @if let Some(body) = op["requestBody"].as_object() {
                p {
                    strong { "Body: " }
                    @for (i, (content_type, content)) in body.get("content").and_then(Value::as_object).into_iter().flatten().enumerate() {
                        @if i > 0 { ", " }
                        code { (content_type) } " " (type_of(&content["schema"]))
                    }
                    @if let Some(d) = body.get("description").and_then(Value::as_str) { " — " (d) }
                }
            }
            table {
                thead { tr { th scope="col" { "Status" } th scope="col" { "Answer" } th scope="col" { "Meaning" } } }
                tbody {
                    @for (status, response) in op["responses"].as_object().into_iter().flatten() {
                        tr {
                            td { (status) }
                            td { @if let Some(schema) = response["content"]["application/json"].get("schema") { (type_of(schema)) } }
                            td { (response["description"].as_str().unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

fn schema_section(name: &str, schema: &Value) -> Markup {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    html! {
        section.op id={ "schema-" (name) } {
            h3 { (name) }
            @if let Some(d) = schema["description"].as_str() { p { (d) } }
            @if let Some(props) = schema["properties"].as_object() {
                table {
                    thead { tr { th scope="col" { "Field" } th scope="col" { "Type" } th scope="col" { "Required" } th scope="col" { "Description" } } }
                    tbody {
                        @for (field, p) in props {
                            tr {
                                td { code { (field) } }
                                td { (type_of(p)) }
                                td { @if required.contains(&field.as_str()) { "yes" } @else { "no" } }
                                td { (p["description"].as_str().unwrap_or_default()) }
                            }
                        }
                    }
                }
            } @else if let Some(words) = schema["enum"].as_array() {
                p { "One of: " @for (i, w) in words.iter().enumerate() { @if i > 0 { ", " } code { (w.as_str().unwrap_or_default()) } } }
            }
        }
    }
}

/// A schema in a few words, linking to named schemas.
fn type_of(schema: &Value) -> Markup {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r);
        return html! { a href={ "#schema-" (name) } { (name) } };
    }
    if let Some(one_of) = schema["oneOf"].as_array() {
        return html! { @for (i, s) in one_of.iter().enumerate() { @if i > 0 { " or " } (type_of(s)) } };
    }
    let ty = match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" or "),
        _ => String::new(),
    };
    html! {
        @if ty.starts_with("array") {
            "array of " (type_of(&schema["items"]))
        } @else {
            (ty)
            @if let Some(f) = schema["format"].as_str() { " (" (f) ")" }
            @if let Some(words) = schema["enum"].as_array() {
                ": " @for (i, w) in words.iter().enumerate() { @if i > 0 { ", " } code { (w.as_str().unwrap_or("null")) } }
            }
        }
    }
}
