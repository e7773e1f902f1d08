//! The hand-written stylesheet and other static files, embedded.

use actix_web::{web, HttpResponse};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/{name}", web::get().to(serve));
}

async fn serve(name: web::Path<String>) -> HttpResponse {
    let name = name.into_inner();
    let Some(bytes) = crate::templates::static_file(&name) else {
        return HttpResponse::NotFound().finish();
    };
    let ct = match name.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    HttpResponse::Ok()
        .content_type(ct)
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(bytes)
}
