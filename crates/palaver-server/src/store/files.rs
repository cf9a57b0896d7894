//! Where attachment bytes live. [`LocalFiles`] keeps them on the local disk (the
//! default); an S3-compatible implementation of [`FileStore`] can replace it.

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
        std::fs::create_dir_all(&dir)?;
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
        let mut file = tokio::fs::File::create(&tmp).await?;
        file.write_all(bytes).await?;
        file.sync_all().await?;
        tokio::fs::rename(&tmp, &path).await
    }

    async fn get(&self, key: &str) -> std::io::Result<Vec<u8>> {
        tokio::fs::read(self.path(key)?).await
    }
}
