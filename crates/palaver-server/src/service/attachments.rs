//! Attachments: upload (size-limited, type sniffed from the bytes, stored before it is
//! recorded) and download (only for the uploader and members of a room where it was
//! posted; anyone else gets `404`, as if it did not exist).

use palaver_protocol::{Attachment, ErrorCode};

use super::{new_id, now_rfc3339, Service};
use crate::auth::Actor;
use crate::error::{AppError, AppResult};
use crate::store::AttachmentRow;

/// The wire form of a stored attachment.
pub fn attachment_to_wire(row: AttachmentRow) -> Attachment {
    Attachment {
        url: format!("/api/v1/attachments/{}", row.id),
        id: row.id,
        filename: row.filename,
        content_type: row.content_type,
        size: row.size,
        created_at: row.created_at,
    }
}

/// The media type of `bytes` from their content (magic numbers via `infer`; valid UTF-8
/// without NUL bytes is `text/plain`), never from what the client claimed.
pub fn sniff(bytes: &[u8]) -> String {
    if let Some(kind) = infer::get(bytes) {
        return kind.mime_type().to_owned();
    }
    if !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok() {
        return "text/plain".into();
    }
    "application/octet-stream".into()
}

/// A safe display name: the last path segment, without control characters or quotes,
/// at most 200 characters; `file` when nothing is left.
pub fn sanitize_filename(raw: Option<&str>) -> String {
    let base = raw
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let clean: String = base
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\\'))
        .take(200)
        .collect();
    let clean = clean.trim().trim_start_matches('.').to_owned();
    if clean.is_empty() {
        "file".into()
    } else {
        clean
    }
}

impl Service {
    /// Stores an uploaded file for the caller.
    ///
    /// # Errors
    /// `413 payload_too_large` over `attachments.max_bytes` (nothing stored);
    /// `415 unsupported_media_type` when the sniffed type is not allowed; `422
    /// validation_failed` (`file`) for an empty file.
    pub async fn upload(
        &self,
        actor: &Actor,
        filename: Option<&str>,
        bytes: &[u8],
    ) -> AppResult<Attachment> {
        if bytes.len() > self.attachments.max_bytes {
            return Err(AppError::new(
                ErrorCode::PayloadTooLarge,
                format!("files are limited to {} bytes", self.attachments.max_bytes),
            ));
        }
        if bytes.is_empty() {
            return Err(AppError::validation("file", "the file is empty"));
        }
        let content_type = sniff(bytes);
        if !self.attachments.allowed_types.contains(&content_type) {
            return Err(AppError::new(
                ErrorCode::UnsupportedMediaType,
                format!("files of type {content_type} are not accepted"),
            ));
        }
        let id = new_id();
        let row = AttachmentRow {
            id: id.clone(),
            uploader_id: actor.user_id.clone(),
            filename: sanitize_filename(filename),
            content_type,
            size: bytes.len() as i64,
            storage_key: id,
            created_at: now_rfc3339(),
        };
        // Bytes first, then the row: a crash in between leaves an orphan file, never a
        // row without its file.
        self.files
            .put(&row.storage_key, bytes)
            .await
            .map_err(AppError::internal)?;
        self.store.attachments.create_attachment(&row).await?;
        Ok(attachment_to_wire(row))
    }

    /// An attachment's metadata and bytes, for its uploader or a member of a room where
    /// it was posted.
    ///
    /// # Errors
    /// `404 not_found` for anyone else, and for unknown ids.
    pub async fn download(&self, actor: &Actor, id: &str) -> AppResult<(AttachmentRow, Vec<u8>)> {
        if !self
            .store
            .attachments
            .may_download(id, &actor.user_id)
            .await?
        {
            return Err(AppError::not_found("attachment"));
        }
        let row = self
            .store
            .attachments
            .attachment(id)
            .await?
            .ok_or_else(|| AppError::not_found("attachment"))?;
        let bytes = self
            .files
            .get(&row.storage_key)
            .await
            .map_err(AppError::internal)?;
        Ok((row, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_from_content_not_name() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(sniff(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(sniff("héllo".as_bytes()), "text/plain");
        assert_eq!(sniff(&[0, 1, 2, 3, 0xff]), "application/octet-stream");
        assert_eq!(
            sniff(b"MZ\x90\x00"),
            "application/vnd.microsoft.portable-executable"
        );
    }

    #[test]
    fn filenames_are_sanitised() {
        assert_eq!(sanitize_filename(Some("../../etc/passwd")), "passwd");
        assert_eq!(sanitize_filename(Some("C:\\x\\a\"b.png")), "ab.png");
        assert_eq!(sanitize_filename(Some(".hidden")), "hidden");
        assert_eq!(sanitize_filename(None), "file");
        assert_eq!(sanitize_filename(Some("a\nb.txt")), "ab.txt");
    }
}
