//! Templates and static files, embedded in the binary from the repository's
//! `templates/` folder. Auto-escaping is on for every `.html` template.

use std::sync::OnceLock;

use include_dir::{include_dir, Dir};

pub static TEMPLATE_DIR: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../templates");

static TERA: OnceLock<Result<tera::Tera, String>> = OnceLock::new();

fn collect<'a>(dir: &'a Dir<'a>, out: &mut Vec<(String, String)>) {
    for f in dir.files() {
        let path = f.path().to_string_lossy().replace('\\', "/");
        if path.starts_with("pages/") || path.starts_with("email/") {
            if let Some(text) = f.contents_utf8() {
                out.push((path, text.to_string()));
            }
        }
    }
    for d in dir.dirs() {
        collect(d, out);
    }
}

fn build() -> Result<tera::Tera, String> {
    let mut files = Vec::new();
    collect(&TEMPLATE_DIR, &mut files);
    let mut t = tera::Tera::default();
    t.autoescape_on(vec![".html", ".html.tera"]);
    t.add_raw_templates(files).map_err(|e| format!("{e:?}"))?;
    Ok(t)
}

/// The page templates (built once).
pub fn tera() -> Result<&'static tera::Tera, String> {
    TERA.get_or_init(build).as_ref().map_err(Clone::clone)
}

/// Renders a page template; errors are logged and reported as a plain message.
pub fn render(name: &str, ctx: &tera::Context) -> Result<String, String> {
    let t = tera()?;
    t.render(name, ctx).map_err(|e| {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        tracing::error!(template = name, error = %msg, "template render failed");
        msg
    })
}

/// A static file under `templates/static/`.
pub fn static_file(name: &str) -> Option<&'static [u8]> {
    TEMPLATE_DIR
        .get_file(format!("static/{name}"))
        .map(|f| f.contents())
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_templates_parse() {
        super::tera().unwrap();
    }
}
