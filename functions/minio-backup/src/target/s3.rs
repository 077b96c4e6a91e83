//! An S3-compatible bucket (MinIO, Garage, AWS) through `aws-sdk-s3`. Settings for servers that
//! are not AWS: path-style addressing, an explicit region, and checksums only where the API
//! requires them (the SDK's default CRC trailers are refused by several servers).
//!
//! A stream of unknown length goes up as a multipart upload in parts of 8 MiB (64 MiB past
//! part 2,000, so 10,000 parts reach beyond 500 GB), at most two parts in flight while the next
//! is read: memory stays a few parts whatever the size. A stream shorter than one part is held
//! and sent with one `PutObject` on completion. Any error aborts the multipart upload.

use super::{ObjectInfo, Reader, TargetError, fill};
use crate::config::S3Config;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use std::collections::VecDeque;
use tokio::task::JoinHandle;

const PART: usize = 8 * 1024 * 1024;
const BIG_PART: usize = 64 * 1024 * 1024;
const IN_FLIGHT: usize = 2;

#[derive(Debug, Clone)]
pub struct S3 {
    client: Client,
    bucket: String,
    prefix: String,
    endpoint: String,
}

#[derive(Debug)]
pub enum PendingUpload {
    /// Shorter than one part: sent on completion.
    Small { s3: S3, key: String, bytes: Vec<u8> },
    Multipart {
        s3: S3,
        key: String,
        upload_id: String,
        parts: Vec<CompletedPart>,
    },
}

fn failed(what: &str, e: impl std::error::Error) -> TargetError {
    TargetError::new(format!("{what}: {}", DisplayErrorContext(e)))
}

fn part_size(number: i32) -> usize {
    if number <= 2000 { PART } else { BIG_PART }
}

type PartTask = JoinHandle<Result<CompletedPart, TargetError>>;

impl S3 {
    pub fn new(cfg: &S3Config) -> Self {
        let creds = Credentials::new(
            cfg.access_key_id.clone(),
            cfg.secret_access_key.expose_secret().to_owned(),
            None,
            None,
            "minio-backup",
        );
        let https = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(https)
            .region(Region::new(cfg.region.clone()))
            .endpoint_url(cfg.endpoint.clone())
            .credentials_provider(creds)
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Self {
            client: Client::from_conf(conf),
            bucket: cfg.bucket.clone(),
            prefix: cfg.prefix.clone(),
            endpoint: cfg.endpoint.clone(),
        }
    }

    pub fn describe(&self) -> String {
        let prefix = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("/{}", self.prefix)
        };
        format!("s3://{}{prefix} at {}", self.bucket, self.endpoint)
    }

    fn full(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn relative(&self, full: &str) -> String {
        if self.prefix.is_empty() {
            full.to_owned()
        } else {
            full.strip_prefix(&format!("{}/", self.prefix))
                .unwrap_or(full)
                .to_owned()
        }
    }

    pub async fn upload(
        &self,
        key: &str,
        reader: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<PendingUpload, TargetError> {
        let mut buf = Vec::with_capacity(PART);
        let n = fill(reader, &mut buf, PART)
            .await
            .map_err(|e| TargetError::new(format!("reading the backup stream: {e}")))?;
        progress(n as u64);
        if n < PART {
            return Ok(PendingUpload::Small {
                s3: self.clone(),
                key: key.to_owned(),
                bytes: buf,
            });
        }
        let full = self.full(key);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| failed(&format!("starting the upload of {full}"), e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| TargetError::new("the server gave no upload id"))?
            .to_owned();
        let sent = self
            .send_parts(&full, &upload_id, reader, buf, n as u64, progress)
            .await;
        match sent {
            Ok(parts) => Ok(PendingUpload::Multipart {
                s3: self.clone(),
                key: key.to_owned(),
                upload_id,
                parts,
            }),
            Err(e) => {
                self.abort_upload(&full, &upload_id).await;
                Err(e)
            }
        }
    }

    async fn send_parts(
        &self,
        full: &str,
        upload_id: &str,
        reader: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
        first: Vec<u8>,
        mut total: u64,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Vec<CompletedPart>, TargetError> {
        let mut in_flight: VecDeque<PartTask> = VecDeque::new();
        let mut done = Vec::new();
        let mut number = 1;
        let mut next = Some(first);
        while let Some(bytes) = next.take() {
            if in_flight.len() >= IN_FLIGHT {
                if let Some(task) = in_flight.pop_front() {
                    done.push(join(task).await?);
                }
            }
            in_flight.push_back(self.spawn_part(full, upload_id, number, bytes));
            number += 1;
            let mut buf = Vec::with_capacity(part_size(number));
            let n = fill(reader, &mut buf, part_size(number))
                .await
                .map_err(|e| TargetError::new(format!("reading the backup stream: {e}")));
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    for t in in_flight {
                        t.abort();
                    }
                    return Err(e);
                }
            };
            total += n as u64;
            progress(total);
            if n > 0 {
                next = Some(buf);
            }
        }
        for task in in_flight {
            done.push(join(task).await?);
        }
        Ok(done)
    }

    fn spawn_part(&self, full: &str, upload_id: &str, number: i32, bytes: Vec<u8>) -> PartTask {
        let (client, bucket, key, id) = (
            self.client.clone(),
            self.bucket.clone(),
            full.to_owned(),
            upload_id.to_owned(),
        );
        tokio::spawn(async move {
            let out = client
                .upload_part()
                .bucket(bucket)
                .key(&key)
                .upload_id(id)
                .part_number(number)
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(|e| failed(&format!("uploading part {number} of {key}"), e))?;
            Ok(CompletedPart::builder()
                .set_e_tag(out.e_tag().map(str::to_owned))
                .part_number(number)
                .build())
        })
    }

    async fn abort_upload(&self, full: &str, upload_id: &str) {
        if let Err(e) = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .send()
            .await
        {
            tracing::warn!(key = full, error = %DisplayErrorContext(e), "cannot abort a multipart upload; it is cleaned up after a day");
        }
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), TargetError> {
        let full = self.full(key);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| failed(&format!("writing {full}"), e))?;
        Ok(())
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, TargetError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(self.full(prefix))
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| failed(&format!("listing {}", self.describe()), e))?;
            for o in page.contents() {
                if let Some(key) = o.key() {
                    out.push(ObjectInfo {
                        key: self.relative(key),
                        size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    });
                }
            }
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        Ok(out)
    }

    pub async fn get(&self, key: &str) -> Result<Reader, TargetError> {
        let full = self.full(key);
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| failed(&format!("reading {full}"), e))?;
        Ok(Box::pin(out.body.into_async_read()))
    }

    pub async fn head(&self, key: &str) -> Result<Option<u64>, TargetError> {
        let full = self.full(key);
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(out) => Ok(Some(
                out.content_length()
                    .and_then(|l| u64::try_from(l).ok())
                    .unwrap_or(0),
            )),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(failed(&format!("checking {full}"), e)),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), TargetError> {
        let full = self.full(key);
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| failed(&format!("deleting {full}"), e))?;
        Ok(())
    }

    pub async fn clean_incomplete(&self, cutoff: DateTime<Utc>) -> Result<u64, TargetError> {
        let uploads = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(self.full(""))
            .send()
            .await
            .map_err(|e| failed("listing incomplete uploads", e))?;
        let mut aborted = 0;
        for u in uploads.uploads() {
            let old = u.initiated().is_some_and(|t| t.secs() < cutoff.timestamp());
            if let (true, Some(key), Some(id)) = (old, u.key(), u.upload_id()) {
                self.abort_upload(key, id).await;
                aborted += 1;
            }
        }
        Ok(aborted)
    }
}

async fn join(task: PartTask) -> Result<CompletedPart, TargetError> {
    task.await
        .map_err(|e| TargetError::new(format!("a part upload stopped: {e}")))?
}

impl PendingUpload {
    pub async fn complete(self) -> Result<(), TargetError> {
        match self {
            PendingUpload::Small { s3, key, bytes } => s3.put(&key, bytes).await,
            PendingUpload::Multipart {
                s3,
                key,
                upload_id,
                parts,
            } => {
                let full = s3.full(&key);
                let done = s3
                    .client
                    .complete_multipart_upload()
                    .bucket(&s3.bucket)
                    .key(&full)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await;
                if let Err(e) = done {
                    s3.abort_upload(&full, &upload_id).await;
                    return Err(failed(&format!("completing {full}"), e));
                }
                Ok(())
            }
        }
    }

    pub async fn abort(self) {
        if let PendingUpload::Multipart {
            s3, key, upload_id, ..
        } = self
        {
            s3.abort_upload(&s3.full(&key), &upload_id).await;
        }
    }
}
