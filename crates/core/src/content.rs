//! Lesson bodies: Markdown rendered to HTML, and every body (Markdown output
//! or authored HTML) sanitised with an allow-list before it reaches a page.

pub fn render_lesson(format: &str, body: &str) -> String {
    let html = match format {
        "html" => body.to_string(),
        _ => {
            let mut out = String::new();
            let opts = pulldown_cmark::Options::ENABLE_TABLES
                | pulldown_cmark::Options::ENABLE_STRIKETHROUGH
                | pulldown_cmark::Options::ENABLE_TASKLISTS;
            pulldown_cmark::html::push_html(&mut out, pulldown_cmark::Parser::new_ext(body, opts));
            out
        }
    };
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer"))
        .clean(&html)
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn markdown_is_rendered_and_scripts_removed() {
        let h = super::render_lesson("markdown", "# Hi\n\n<script>alert(1)</script>**b**");
        assert!(h.contains("<h1>Hi</h1>"));
        assert!(!h.contains("<script"));
        let h = super::render_lesson("html", "<p onclick=\"x()\">ok</p><img src=x onerror=y>");
        assert!(!h.contains("onclick"));
        assert!(!h.contains("onerror"));
    }
}
