//! Where attachment bytes live: [`LocalFiles`] on the local disk (the default), or
//! [`S3Files`] in a bucket of any S3-compatible store (AWS S3, MinIO, Cloudflare R2,
//! Garage...), signed with AWS Signature Version 4 by `rusty-s3`.

use std::path::PathBuf;

use async_trait::async_trait;

/// Blob storage for attachments, addressed by opaque keys chosen by the caller.
#[async_trait]
pub trait FileStore: Send + Sync {
    /// Stores `bytes` under `key`, durably (the call returns after the data is synced).
    async fn put(&self, key: &str, bytes: &[u8]) -> std::io::Result<()>;

    /// The bytes under `key`.
    async fn get(&self, key: &str) -> std::io::Result<Vec<u8>>;
}

/// Files in one directory, one file per key.
pub struct LocalFiles {
    dir: PathBuf,
}

impl LocalFiles {
    /// Uses (and creates) `dir`.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn new(dir: PathBuf) -> std::io::Result<Self> {
        crate::store::create_private_dir(&dir)?;
        Ok(LocalFiles { dir })
    }

    fn path(&self, key: &str) -> std::io::Result<PathBuf> {
        // Keys are server-generated ids; refuse anything that could leave the directory.
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "invalid storage key",
            ));
        }
        Ok(self.dir.join(key))
    }
}

#[async_trait]
impl FileStore for LocalFiles {
    async fn put(&self, key: &str, bytes: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt as _;
        let path = self.path(key)?;
        let tmp = path.with_extension("part");
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        // Attachments are private messages' files: owner-only (ASVS 5.0 V13.3).
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options.open(&tmp).await?;
        file.write_all(bytes).await?;
        file.sync_all().await?;
        tokio::fs::rename(&tmp, &path).await
    }

    async fn get(&self, key: &str) -> std::io::Result<Vec<u8>> {
        tokio::fs::read(self.path(key)?).await
    }
}

/// How long a signed S3 request stays valid.
const S3_SIGNATURE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Objects in one bucket of an S3-compatible store, one object per key.
pub struct S3Files {
    bucket: rusty_s3::Bucket,
    credentials: rusty_s3::Credentials,
    http: reqwest::Client,
}

impl S3Files {
    /// A store for `config`'s bucket.
    ///
    /// # Errors
    /// An endpoint that is not an `http(s)` URL, or a bucket name the URL style cannot
    /// carry.
    pub fn new(config: &crate::config::S3Config) -> anyhow::Result<Self> {
        let endpoint: url::Url = config.endpoint.parse()?;
        let style = if config.path_style {
            rusty_s3::UrlStyle::Path
        } else {
            rusty_s3::UrlStyle::VirtualHost
        };
        let bucket = rusty_s3::Bucket::new(
            endpoint,
            style,
            config.bucket.clone(),
            config.region.clone(),
        )?;
        let credentials = rusty_s3::Credentials::new(
            config.access_key_id.clone(),
            config.secret_access_key.expose().to_owned(),
        );
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(S3Files {
            bucket,
            credentials,
            http,
        })
    }
}

fn s3_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("S3: {e}"))
}

#[async_trait]
impl FileStore for S3Files {
    async fn put(&self, key: &str, bytes: &[u8]) -> std::io::Result<()> {
        use rusty_s3::S3Action as _;
        let url = self
            .bucket
            .put_object(Some(&self.credentials), key)
            .sign(S3_SIGNATURE_TTL);
        let response = self
            .http
            .put(url)
            .body(bytes.to_vec())
            .send()
            .await
            .map_err(s3_error)?;
        if !response.status().is_success() {
            return Err(s3_error(format!("PUT {key}: HTTP {}", response.status())));
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> std::io::Result<Vec<u8>> {
        use rusty_s3::S3Action as _;
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(S3_SIGNATURE_TTL);
        let response = self.http.get(url).send().await.map_err(s3_error)?;
        if !response.status().is_success() {
            return Err(s3_error(format!("GET {key}: HTTP {}", response.status())));
        }
        Ok(response.bytes().await.map_err(s3_error)?.to_vec())
    }
}
