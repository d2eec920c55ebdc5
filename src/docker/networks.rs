//! /networks.

use super::{DockerError, Result};

pub async fn list() -> Result<()> {
    Err(DockerError::NotImplemented("networks: not yet".into()))
}
pub async fn create() -> Result<()> {
    Err(DockerError::NotImplemented("networks: not yet".into()))
}
pub async fn inspect() -> Result<()> {
    Err(DockerError::NotImplemented("networks: not yet".into()))
}
pub async fn remove() -> Result<()> {
    Err(DockerError::NotImplemented("networks: not yet".into()))
}
