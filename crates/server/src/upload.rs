//! The body of the invitation forms: either `application/x-www-form-urlencoded`
//! (the pasted sheet) or `multipart/form-data` with the sheet as a file
//! (`<input type=file name=file>`), read with a size limit. Nothing here
//! writes anything; the handler checks the CSRF token in what comes back
//! before it acts.

use actix_web::{http::StatusCode, web, HttpRequest};
use futures_util::StreamExt;

use crate::error::PageError;

/// The most one sheet (file or pasted text) may hold.
pub const MAX_SHEET_BYTES: usize = 1024 * 1024;
/// Room for the other fields and the multipart framing.
const MAX_BODY_BYTES: usize = MAX_SHEET_BYTES + 64 * 1024;
/// How much of a too-large body is read (and thrown away) so the browser
/// gets the error page instead of a reset connection; beyond it the
/// connection is dropped.
const DRAIN_BYTES: usize = 16 * 1024 * 1024;

/// What the invitation forms send.
#[derive(Debug, Default, Clone)]
pub struct SheetForm {
    pub csrf: String,
    /// The sheet: the uploaded file when one was chosen, else the pasted text.
    pub csv: String,
    /// The uploaded file's name, for the page.
    pub filename: Option<String>,
    /// `batch` on the progress form.
    pub batch: String,
}

pub fn too_large() -> PageError {
    PageError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "csv_too_large",
        format!(
            "The sheet is larger than {} KiB, the most one upload may hold. Split it into smaller sheets of at most {} rows and upload them one after another.",
            MAX_SHEET_BYTES / 1024,
            coursegate_core::invitations::MAX_ROWS
        ),
    )
}

/// UTF-8 text, with or without a byte order mark.
pub fn decode(bytes: &[u8]) -> Result<String, PageError> {
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    String::from_utf8(b.to_vec()).map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "csv_not_utf8",
            "The file is not UTF-8 text. In the spreadsheet, save it as “CSV UTF-8” and upload it again.",
        )
    })
}

fn bad_upload(detail: impl Into<String>) -> PageError {
    PageError::new(StatusCode::BAD_REQUEST, "bad_upload", detail)
}

fn set(form: &mut SheetForm, name: &str, value: String) {
    match name {
        "csrf" => form.csrf = value,
        "csv" if form.filename.is_none() => form.csv = value,
        "batch" => form.batch = value,
        _ => {}
    }
}

/// Reads the form, whichever encoding it came in.
pub async fn read(req: &HttpRequest, mut payload: web::Payload) -> Result<SheetForm, PageError> {
    let ct = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut form = SheetForm::default();
    if ct.starts_with("multipart/form-data") {
        let mut mp = actix_multipart::Multipart::new(req.headers(), payload);
        let (mut total, mut too_big) = (0usize, false);
        while let Some(field) = mp.next().await {
            if too_big && total > DRAIN_BYTES {
                break;
            }
            let mut field =
                field.map_err(|e| bad_upload(format!("The upload is malformed: {e}.")))?;
            let name = field.name().unwrap_or("").to_string();
            let filename = field
                .content_disposition()
                .and_then(|d| d.get_filename())
                .map(str::to_string);
            let mut buf = Vec::new();
            while let Some(chunk) = field.next().await {
                let chunk =
                    chunk.map_err(|e| bad_upload(format!("The upload is malformed: {e}.")))?;
                total += chunk.len();
                if too_big || buf.len() + chunk.len() > MAX_SHEET_BYTES || total > MAX_BODY_BYTES {
                    too_big = true;
                    buf.clear();
                    if total > DRAIN_BYTES {
                        break;
                    }
                    continue;
                }
                buf.extend_from_slice(&chunk);
            }
            if too_big {
                continue;
            }
            if name == "file" {
                // An empty file input still sends a part, without a name or bytes.
                if filename.as_deref().is_some_and(|f| !f.is_empty()) || !buf.is_empty() {
                    form.csv = decode(&buf)?;
                    form.filename = Some(filename.unwrap_or_default());
                }
            } else {
                let value = String::from_utf8(buf)
                    .map_err(|_| bad_upload(format!("The field {name:?} is not UTF-8 text.")))?;
                set(&mut form, &name, value);
            }
        }
        if too_big {
            return Err(too_large());
        }
    } else {
        let mut body = web::BytesMut::new();
        let (mut total, mut too_big) = (0usize, false);
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| bad_upload(format!("The form did not arrive: {e}.")))?;
            total += chunk.len();
            if too_big || body.len() + chunk.len() > MAX_BODY_BYTES {
                too_big = true;
                body.clear();
                if total > DRAIN_BYTES {
                    break;
                }
                continue;
            }
            body.extend_from_slice(&chunk);
        }
        if too_big {
            return Err(too_large());
        }
        for (k, v) in url::form_urlencoded::parse(&body) {
            set(&mut form, &k, v.into_owned());
        }
        if form.csv.len() > MAX_SHEET_BYTES {
            return Err(too_large());
        }
    }
    Ok(form)
}
