//! `/images/…`: list, inspect, pull (`create`), tag and delete.

use axum::extract::Request;

use super::{DockerError, Result};

pub async fn list() -> Result<()> {
    Err(DockerError::NotImplemented("images: not yet".into()))
}
pub async fn create() -> Result<()> {
    Err(DockerError::NotImplemented("images: not yet".into()))
}
pub async fn by_name(_req: Request) -> Result<()> {
    Err(DockerError::NotImplemented("images: not yet".into()))
}
pub async fn by_name_post(_req: Request) -> Result<()> {
    Err(DockerError::NotImplemented("images: not yet".into()))
}
pub async fn remove(_req: Request) -> Result<()> {
    Err(DockerError::NotImplemented("images: not yet".into()))
}
