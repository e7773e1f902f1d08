//! Email templates: subject, plain text and HTML per mail, over shared bases.
//!
//! Layout on disk (`templates/email/` in the repository) and, identically,
//! inside the binary:
//!
//! ```text
//! base.html.tera  base.txt.tera
//! <name>/subject.txt.tera  <name>/body.txt.tera  <name>/body.html.tera
//! ```
//!
//! Template names inside Tera carry an `email/` prefix (`email/base.html.tera`),
//! the same names the server's page Tera uses, so `{% extends %}` works in both.
//! HTML is auto-escaped; text and subject are not (they are not HTML). The
//! subject is folded to one line; the text is tidied (trailing spaces and runs
//! of blank lines removed).
//!
//! # Context
//!
//! Every template reads `site`: `name` (required), `support_email`,
//! `support_phone`, `logo_url`, `url` (optional). Then, per template:
//!
//! | template | keys |
//! |---|---|
//! | `learner_link` | `link`, `course.title` (required); `learner.name`, `learner.email`, `reference` (a noun phrase: `"order 1234"`), `expires_at` (pre-formatted, with time zone; absent = as long as the enrolment), `code`, `code_expires_minutes` (10), `signin_url` |
//! | `signin_link` | `link` (required); `learner.name`, `learner.email`, `course.title`, `code`, `expires_minutes` (15), `code_expires_minutes` (10), `signin_url` |
//! | `staff_signin` | `link` (required); `staff.name`, `staff.email`, `staff.role`, `expires_minutes` (10) |
//! | `stepup_code` | `code` (required); `learner.name`, `course.title`, `expires_minutes` (10) |
//!
//! Times are formatted by the caller (in the learner's time zone where known):
//! the templates do no date arithmetic.

use std::path::Path;

use tera::Tera;

use crate::MailError;

/// The templates every deployment has.
pub const TEMPLATE_NAMES: &[&str] = &["learner_link", "signin_link", "staff_signin", "stepup_code"];

macro_rules! embed {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../../templates/email/", $path)))),*]
    };
}

/// The repository's `templates/email/` files, compiled in.
const EMBEDDED: &[(&str, &str)] = embed!(
    "base.html.tera",
    "base.txt.tera",
    "learner_link/subject.txt.tera",
    "learner_link/body.txt.tera",
    "learner_link/body.html.tera",
    "signin_link/subject.txt.tera",
    "signin_link/body.txt.tera",
    "signin_link/body.html.tera",
    "staff_signin/subject.txt.tera",
    "staff_signin/body.txt.tera",
    "staff_signin/body.html.tera",
    "stepup_code/subject.txt.tera",
    "stepup_code/body.txt.tera",
    "stepup_code/body.html.tera",
);

/// A rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line, no markup.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

/// The email templates, parsed once.
#[derive(Debug)]
pub struct Templates {
    tera: Tera,
    names: Vec<String>,
}

fn tera_error(name: &str, e: &tera::Error) -> MailError {
    MailError::Template {
        name: name.to_owned(),
        message: crate::error::chain(e),
    }
}

impl Templates {
    /// The compiled-in templates only.
    pub fn embedded() -> Result<Templates, MailError> {
        Self::build(Vec::new())
    }

    /// The compiled-in templates, each replaced by the file of the same path
    /// under `dir` (the `templates/email` directory) when that exists; further
    /// `<name>/` folders under `dir` holding all three files add templates. A
    /// missing `dir` is not an error: the binary works without it.
    pub fn load(dir: Option<&Path>) -> Result<Templates, MailError> {
        let Some(dir) = dir.filter(|d| d.is_dir()) else {
            if let Some(d) = dir {
                tracing::info!(dir = %d.display(), "no email template directory; using the built-in templates");
            }
            return Self::embedded();
        };
        let mut files: Vec<(String, String)> = Vec::new();
        let read = |rel: &str| -> Result<Option<String>, MailError> {
            let p = dir.join(rel);
            if !p.is_file() {
                return Ok(None);
            }
            std::fs::read_to_string(&p)
                .map(Some)
                .map_err(|e| MailError::Template {
                    name: rel.to_owned(),
                    message: format!("{}: {e}", p.display()),
                })
        };
        for (rel, _) in EMBEDDED {
            if let Some(text) = read(rel)? {
                files.push(((*rel).to_owned(), text));
            }
        }
        let entries = std::fs::read_dir(dir).map_err(|e| MailError::Template {
            name: "email".into(),
            message: format!("{}: {e}", dir.display()),
        })?;
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !entry.path().is_dir() || TEMPLATE_NAMES.contains(&name.as_str()) {
                continue;
            }
            let parts = ["subject.txt.tera", "body.txt.tera", "body.html.tera"];
            let mut found = Vec::new();
            for part in parts {
                if let Some(text) = read(&format!("{name}/{part}"))? {
                    found.push((format!("{name}/{part}"), text));
                }
            }
            if found.len() == parts.len() {
                files.extend(found);
            }
        }
        Self::build(files)
    }

    fn build(overrides: Vec<(String, String)>) -> Result<Templates, MailError> {
        let mut all: Vec<(String, String)> = EMBEDDED
            .iter()
            .filter(|(rel, _)| !overrides.iter().any(|(o, _)| o == rel))
            .map(|(rel, text)| ((*rel).to_owned(), (*text).to_owned()))
            .collect();
        all.extend(overrides);

        let mut names: Vec<String> = all
            .iter()
            .filter_map(|(rel, _)| rel.strip_suffix("/subject.txt.tera").map(str::to_owned))
            .collect();
        names.sort();

        let mut tera = Tera::default();
        tera.autoescape_on(vec![".html.tera", ".html"]);
        tera.add_raw_templates(
            all.into_iter()
                .map(|(rel, text)| (format!("email/{rel}"), text)),
        )
        .map_err(|e| tera_error("email", &e))?;
        Ok(Templates { tera, names })
    }

    /// The names of the available templates, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Renders `name` with `ctx` (a JSON object; see the module docs for its keys).
    pub fn render(&self, name: &str, ctx: &serde_json::Value) -> Result<Rendered, MailError> {
        if !self.names.iter().any(|n| n == name) {
            return Err(MailError::Template {
                name: name.to_owned(),
                message: "no such email template".into(),
            });
        }
        let context = tera::Context::from_value(ctx.clone()).map_err(|e| tera_error(name, &e))?;
        let render = |part: &str| {
            self.tera
                .render(&format!("email/{name}/{part}"), &context)
                .map_err(|e| tera_error(name, &e))
        };
        let subject = render("subject.txt.tera")?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if subject.is_empty() {
            return Err(MailError::Template {
                name: name.to_owned(),
                message: "the subject rendered empty".into(),
            });
        }
        Ok(Rendered {
            subject,
            text: tidy_text(&render("body.txt.tera")?),
            html: render("body.html.tera")?,
        })
    }
}

/// Trailing spaces off, at most one blank line in a row, no blank lines at
/// either end, a final newline.
fn tidy_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank_run = 0usize;
    for line in s.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() && blank_run > 0 {
            out.push('\n');
        }
        blank_run = 0;
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::tidy_text;

    #[test]
    fn tidies_text() {
        assert_eq!(tidy_text("\n\n a  \n\n\n\nb\n  \n"), " a\n\nb\n");
    }
}
